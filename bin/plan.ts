// `npm run plan`: synthesize, let the engine plan each stack, and write the
// Markdown summary reviewers read (lib/plan/plan-summary.ts).
// Exit status: 0 no changes, 2 changes pending, 1 error.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, loadConfig, PROJECT_DIR } from "../lib/config/config";
import { EngineError, engineBinary, planStack } from "../lib/plan/engine";
import { hasChanges, renderPlanSummary, StackPlan } from "../lib/plan/plan-summary";
import { DEFAULT_OUTDIR, labOutdir, stackWorkingDirs } from "../lib/plan/synth-output";

const USAGE = `usage: npm run plan -- [STACK...] [--output FILE] [--synth-dir DIR]

Synthesizes the app (cdktf synth) into the lab's own folder DIR/labs/<lab name>,
plans each STACK (default: lab) with the engine in TERRAFORM_BINARY_NAME, and
writes a Markdown summary of the changes to FILE and stdout. The lab is lab.yaml
or BTW_CONFIG; state is read from BTW_STATE_DIR (default .btw/state), as by
cdktf deploy.

  --output FILE     where to write the summary (default: DIR/plan-summary.md)
  --synth-dir DIR   cdktf output folder (default: cdktf.out)
  -h, --help        show this help

Exit status: 0 no changes, 2 changes pending, 1 error.`;

class PlanError extends Error {}

interface Options {
  stacks: string[];
  output: string;
  synthDir: string;
}

function parseArgs(args: string[]): Options | "help" {
  const options: Options = { stacks: [], output: "", synthDir: DEFAULT_OUTDIR };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      if (i + 1 >= args.length) throw new PlanError(`${arg} needs a value\n${USAGE}`);
      return args[++i];
    };
    if (arg === "-h" || arg === "--help") return "help";
    else if (arg === "--output") options.output = value();
    else if (arg === "--synth-dir") options.synthDir = value();
    else if (arg.startsWith("-")) throw new PlanError(`unknown option ${arg}\n${USAGE}`);
    else options.stacks.push(arg);
  }
  if (options.stacks.length === 0) options.stacks.push("lab");
  options.synthDir = path.resolve(options.synthDir);
  options.output = path.resolve(options.output || path.join(options.synthDir, "plan-summary.md"));
  return options;
}

function run(what: string, command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    // No spinners or colours in logs; TF_IN_AUTOMATION drops "run terraform apply" hints.
    env: { ...process.env, CI: "1", FORCE_COLOR: "0", TF_IN_AUTOMATION: "1" },
  });
  if (result.error) throw new PlanError(`${what}: cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new PlanError(`${what} failed (exit ${result.status}):\n${`${result.stdout}${result.stderr}`.trim()}`);
  }
  return result.stdout;
}

function synth(outdir: string): void {
  try {
    run("cdktf synth", path.join(PROJECT_DIR, "node_modules", ".bin", "cdktf"), ["synth", "--output", outdir], PROJECT_DIR);
  } catch (error) {
    // cdktf wraps the app's own message (e.g. a config error) in spinners and logs: keep just that.
    const appError = error instanceof PlanError && /btw-img: [^\n]*(?:\n +- [^\n]*)*/.exec(error.message);
    throw appError ? new PlanError(`cdktf synth failed: ${appError[0]}`) : error;
  }
}

/**
 * The lab's own folder in synthDir, given to synth as its output: the plan then reads
 * only this lab's manifest, never one another lab's synth just wrote to synthDir.
 * A config error is left for synth to report, as it reports every app error.
 */
function labSynthDir(synthDir: string): string {
  try {
    return labOutdir(synthDir, loadConfig().name);
  } catch (error) {
    if (error instanceof ConfigError) return synthDir;
    throw error;
  }
}

function main(args: string[]): number {
  const options = parseArgs(args);
  if (options === "help") {
    console.log(USAGE);
    return 0;
  }
  const engine = engineBinary();
  // A failed run must not leave an older summary that looks like its result.
  fs.rmSync(options.output, { force: true });
  const labDir = labSynthDir(options.synthDir);
  console.error(`plan: synthesizing into ${labDir}`);
  synth(labDir);
  const stackDirs = stackWorkingDirs(labDir);
  const unknown = options.stacks.filter((stack) => !stackDirs.has(stack));
  if (unknown.length > 0) throw new PlanError(`unknown stack ${unknown.join(", ")} (the app has: ${[...stackDirs.keys()].join(", ")})`);

  const plans: StackPlan[] = options.stacks.map((stack) => {
    console.error(`plan: planning stack ${stack} with ${engine}`);
    return { stack, plan: planStack(stackDirs.get(stack) as string) };
  });
  const summary = renderPlanSummary(plans);
  fs.mkdirSync(path.dirname(options.output), { recursive: true });
  fs.writeFileSync(options.output, summary);
  process.stdout.write(summary);
  console.error(`plan: summary written to ${options.output}`);
  return hasChanges(plans) ? 2 : 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof PlanError || error instanceof EngineError)) throw error;
  console.error(`plan: error: ${error.message}`);
  process.exitCode = 1;
}
