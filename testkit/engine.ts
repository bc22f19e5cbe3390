// Runs the real engine (terraform or tofu, chosen by scripts/host/setup-host.sh)
// on a stack synthesized into a temporary folder.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { App } from "../lib/cdk";
import { LabConfig, parseConfig } from "../lib/config/config";
import { planStack } from "../lib/plan/engine";
import { LabStack } from "../stacks/lab-stack";

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

export interface PlannedChange {
  address: string;
  type: string;
  actions: string[];
}

export function planChanges(stackDir: string): PlannedChange[] {
  return (planStack(stackDir).resource_changes ?? []).map((c) => ({ address: c.address, type: c.type, actions: c.change.actions }));
}
