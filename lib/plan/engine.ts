// Runs the engine that scripts/host/setup-host.sh chose (TERRAFORM_BINARY_NAME, with
// the CLI config of the local provider mirror) on a synthesized stack folder.
import { spawnSync } from "child_process";
import * as path from "path";
import { PlanJson } from "./plan-summary";

export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EngineError";
  }
}

export function engineBinary(): string {
  const engine = process.env.TERRAFORM_BINARY_NAME;
  if (!engine || !process.env.TF_CLI_CONFIG_FILE) {
    throw new EngineError("TERRAFORM_BINARY_NAME/TF_CLI_CONFIG_FILE are not set: run through npm or `btw` (they set up the host and source .btw/env.sh)");
  }
  return engine;
}

export function runEngine(stackDir: string, args: string[]): string {
  const engine = engineBinary();
  const what = `${path.basename(engine)} ${args[0]}`;
  const result = spawnSync(engine, args, {
    cwd: stackDir,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    // TF_IN_AUTOMATION drops "run terraform apply" hints from the output.
    env: { ...process.env, TF_IN_AUTOMATION: "1" },
  });
  if (result.error) throw new EngineError(`${what}: cannot run ${engine}: ${result.error.message}`);
  if (result.status !== 0) throw new EngineError(`${what} in ${stackDir} failed (exit ${result.status}):\n${`${result.stdout}${result.stderr}`.trim()}`);
  return result.stdout;
}

/** init, plan and `show -json` of a synthesized stack: the plan as the engine sees it. */
export function planStack(stackDir: string): PlanJson {
  runEngine(stackDir, ["init", "-input=false", "-no-color"]);
  runEngine(stackDir, ["plan", "-input=false", "-no-color", "-out=plan.tfplan"]);
  const plan = JSON.parse(runEngine(stackDir, ["show", "-json", "-no-color", "plan.tfplan"])) as PlanJson;
  if (plan.errored) throw new EngineError(`the plan in ${stackDir} reported errors`);
  return plan;
}
