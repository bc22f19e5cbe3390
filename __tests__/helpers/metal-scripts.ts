// What the tests of the bare-metal scripts share (no VM): where the scripts are,
// how they are run, a working folder per test file, and a PATH of busybox's
// applets alone, as in the deploy environment's initramfs.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/paths";

// The scripts under test: PXE server (a host step), cache purge (host upkeep), and
// what the deploy environment runs on the machine.
const SCRIPT_DIRS = ["scripts/steps", "scripts/host", "deploy-env"].map((dir) => path.join(PROJECT_DIR, dir));

export const scriptPath = (script: string) => SCRIPT_DIRS.map((dir) => path.join(dir, script)).find((file) => fs.existsSync(file)) ?? script;

/** A working folder for the test file, removed after its tests. */
export function workDir(): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-metal-scripts-"));
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
  return work;
}

export function run(script: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync("sh", [scriptPath(script), ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

export const BUSYBOX = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();

/** A folder of busybox's applets alone (the PATH of the deploy environment), and the host's PROGRAMS beside them, as tools.img has them. */
export function busyboxPath(dir: string, programs: string[] = []): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const applet of execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean)) fs.symlinkSync(BUSYBOX, path.join(dir, applet));
  for (const program of programs) {
    fs.rmSync(path.join(dir, program), { force: true });
    fs.symlinkSync(execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim(), path.join(dir, program));
  }
  return dir;
}

/** Every file under dir (recursively) with its permission bits. */
export function modes(dir: string): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (current: string) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isSymbolicLink()) continue;
      found.set(full, fs.statSync(full).mode & 0o777);
      if (entry.isDirectory()) walk(full);
    }
  };
  found.set(dir, fs.statSync(dir).mode & 0o777);
  walk(dir);
  return found;
}
