// Runs the real cdktf CLI (and so the real engine) on a lab config, with
// synth output and state in a folder of the test's own.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";
import { stackWorkingDirs } from "../lib/plan/synth-output";

export interface CliRun {
  status: number | null;
  output: string;
}

export class LabWorkspace {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-ws-"));
  readonly outdir = path.join(this.dir, "cdktf.out");
  readonly configFile = path.join(this.dir, "lab.yaml");

  /** Runs cdktf without blocking jest, so an interrupted run can still release what tests hold (ENV: more variables, such as a BMC's password). */
  cdktf(args: string[], timeoutMs = 1_800_000, env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
    return new Promise((resolve) => {
      const child = spawn("npx", ["cdktf", ...args, "--output", this.outdir], {
        cwd: PROJECT_DIR,
        env: { ...process.env, BTW_CONFIG: this.configFile, BTW_STATE_DIR: path.join(this.dir, "state"), CI: "1", FORCE_COLOR: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
      child.on("close", (status) => {
        clearTimeout(timer);
        fs.appendFileSync(path.join(this.dir, "cdktf.log"), `\n$ cdktf ${args.join(" ")}\n${output}`);
        resolve({ status, output });
      });
    });
  }

  /** `cdktf deploy STACK` without questions (ARGS: more of its options; ENV: more variables). */
  deployStack(stack: string, timeoutMs?: number, env?: NodeJS.ProcessEnv, args: string[] = []): Promise<CliRun> {
    return this.cdktf(["deploy", stack, "--auto-approve", "--skip-provider-lock", ...args], timeoutMs, env);
  }

  /** `cdktf destroy STACK` without questions. */
  destroyStack(stack: string, timeoutMs?: number, env?: NodeJS.ProcessEnv): Promise<CliRun> {
    return this.cdktf(["destroy", stack, "--auto-approve", "--skip-provider-lock"], timeoutMs, env);
  }

  /** `cdktf deploy lab`, its outputs in outputs.json (outputs()). */
  deploy(): Promise<CliRun> {
    return this.deployStack("lab", undefined, undefined, ["--outputs-file", path.join(this.dir, "outputs.json"), "--outputs-file-include-sensitive-outputs"]);
  }

  destroy(): Promise<CliRun> {
    return this.destroyStack("lab");
  }

  /** A stack's working folder (cdktf.out/labs/<lab>/stacks/<stack>), found as the cdktf CLI finds it: through <outdir>/manifest.json. */
  stackDir(stack = "lab"): string {
    const dir = stackWorkingDirs(this.outdir).get(stack);
    if (!dir) throw new Error(`no stack ${stack} in ${this.outdir}/manifest.json`);
    return dir;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the lab stack's outputs, as each test reads them
  outputs(): Record<string, any> {
    return JSON.parse(fs.readFileSync(path.join(this.dir, "outputs.json"), "utf8")).lab;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
