// Runs the real engine (terraform or tofu, chosen by scripts/setup-host.sh)
// on a stack synthesized into a temporary folder.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { App } from "../../lib/cdk";
import { LabConfig, parseConfig } from "../../lib/config";
import { LabStack } from "../../stacks/lab-stack";

export function engineBinary(): string {
  const engine = process.env.TERRAFORM_BINARY_NAME;
  if (!engine || !process.env.TF_CLI_CONFIG_FILE) {
    throw new Error("TERRAFORM_BINARY_NAME/TF_CLI_CONFIG_FILE are not set: run the tests through `npm test` (it sources .btw/env.sh)");
  }
  return engine;
}

export interface SynthesizedLab {
  config: LabConfig;
  stackDir: string;
  outdir: string;
}

export function synthLabToDir(lab: Record<string, unknown>, outdir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-e2e-"))): SynthesizedLab {
  const config = parseConfig(stringify(lab), path.join(outdir, "lab.yaml"));
  const app = new App({ outdir });
  new LabStack(app, "lab", config);
  app.synth();
  return { config, stackDir: path.join(outdir, "stacks", "lab"), outdir };
}

export function engine(stackDir: string, args: string[], timeout = 600_000): string {
  return execFileSync(engineBinary(), args, { cwd: stackDir, encoding: "utf8", timeout, env: { ...process.env, TF_IN_AUTOMATION: "1" } });
}

export interface PlannedChange {
  address: string;
  type: string;
  actions: string[];
}

export function planChanges(stackDir: string): PlannedChange[] {
  engine(stackDir, ["init", "-input=false", "-no-color"]);
  engine(stackDir, ["plan", "-input=false", "-no-color", "-out=plan.tfplan"]);
  const plan = JSON.parse(engine(stackDir, ["show", "-json", "plan.tfplan"]));
  return (plan.resource_changes ?? []).map((c: any) => ({ address: c.address, type: c.type, actions: c.change.actions }));
}
