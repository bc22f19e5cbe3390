// Opens an image (a built qcow2, or the acquired raw base) read-only for inspection
// and always releases the loop device and mount, even when an assertion fails inside.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";
import { SCRIPTS_DIR } from "../lib/constructs/host-step";

/** A host step (scripts/steps) or, run here on a loop disk, a script of the deploy environment (deploy-env/). */
export function scriptPath(script: string): string {
  const deployEnv = path.join(PROJECT_DIR, "deploy-env", script);
  return fs.existsSync(deployEnv) ? deployEnv : path.join(SCRIPTS_DIR, script);
}

export function withImageRoot<T>(image: string, inspect: (root: string) => T): T {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-inspect-"));
  const raw = path.join(work, "disk.raw");
  const root = path.join(work, "root");
  fs.mkdirSync(root);
  let loop = "";
  let mounted = false;
  try {
    execFileSync("qemu-img", ["convert", "-O", "raw", image, raw]);
    const lib = path.join(SCRIPTS_DIR, "lib", "image-mount.sh");
    loop = execFileSync("sh", ["-c", `. ${lib}; attach_loop "$1" ro`, "sh", raw], { encoding: "utf8" }).trim();
    const part = execFileSync("sh", ["-c", `. ${lib}; root_partition "$1"`, "sh", loop], { encoding: "utf8" }).trim();
    execFileSync("mount", ["-o", "ro,noload", part, root]);
    mounted = true;
    return inspect(root);
  } finally {
    if (mounted) spawnSync("umount", [root]);
    if (loop) spawnSync("losetup", ["-d", loop]);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Installed packages, from the image's dpkg status file. */
export function installedPackages(root: string): Set<string> {
  const status = fs.readFileSync(path.join(root, "var/lib/dpkg/status"), "utf8");
  const installed = new Set<string>();
  for (const stanza of status.split("\n\n")) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    if (name && /^Status: install ok installed$/m.test(stanza)) installed.add(name);
  }
  return installed;
}

export interface ScriptRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export function runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}): ScriptRun {
  const result = spawnSync("sh", [scriptPath(script), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 1_200_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, signal: result.signal, stderr: `${result.stdout}${result.stderr}` };
}

/** Runs a script without blocking the test, so several can run at once. */
export function runScriptAsync(script: string, args: string[]): Promise<ScriptRun> {
  return new Promise((resolve) => {
    const child = spawn("sh", [scriptPath(script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("close", (status, signal) => resolve({ status, signal, stderr: output }));
  });
}

export interface SignalledRun extends ScriptRun {
  /** The marker showed and the signal reached the running script: false when it ended first, for whatever reason. */
  signalSent: boolean;
}

/** Starts a script and sends it a signal once its output contains a marker (after beforeSignal, if given). */
export function runScriptUntil(script: string, args: string[], marker: RegExp, signal: NodeJS.Signals, beforeSignal?: () => void): Promise<SignalledRun> {
  return new Promise((resolve) => {
    const child = spawn("sh", [scriptPath(script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let tried = false;
    let signalSent = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!tried && marker.test(output)) {
        tried = true;
        try {
          beforeSignal?.();
        } finally {
          // false when the script has already exited
          signalSent = child.kill(signal);
        }
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("close", (status, sig) => resolve({ status, signal: sig, stderr: output, signalSent }));
  });
}
