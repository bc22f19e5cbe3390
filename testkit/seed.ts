// make-seed-iso.sh run as the seed step runs it, timed, with the bytes the whole
// run wrote to disk (GNU time's file system outputs: every process of the run,
// daemon and chroot included), so a test or the benchmark can see no image copy.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { scriptPath } from "./image";

export interface SeedRequest {
  name: string;
  output: string;
  userData: string;
  /** The image whose cloud-init checks the user-data (--validate-with). */
  image?: string;
}

export interface SeedRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  elapsedMs: number;
  /** What the run wrote to storage (page cache dirtied, tmpfs not counted). */
  writtenBytes: number;
}

export interface StartedSeed {
  pid: number;
  kill(signal: NodeJS.Signals): void;
  done: Promise<SeedRun>;
}

export function startSeed(request: SeedRequest): StartedSeed {
  const timeFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sv-seed-time-")), "time");
  const args = ["--name", request.name, "--output", request.output, ...(request.image ? ["--validate-with", request.image] : [])];
  const started = Date.now();
  // -q: GNU time's own line about a non-zero status would hide the count.
  const child = spawn("/usr/bin/time", ["-q", "-f", "%O", "-o", timeFile, "sh", scriptPath("make-seed-iso.sh"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      USER_DATA: request.userData,
      META_DATA: `instance-id: ${request.name}\nlocal-hostname: ${request.name}\n`,
      NETWORK_CONFIG: "version: 2\nethernets: {}\n",
    },
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<SeedRun>((resolve) => {
    child.on("close", (status, signal) => {
      const elapsedMs = Date.now() - started;
      const blocks = fs.existsSync(timeFile) ? Number(fs.readFileSync(timeFile, "utf8").trim().split("\n").pop()) : NaN;
      fs.rmSync(path.dirname(timeFile), { recursive: true, force: true });
      resolve({ status, signal, output, elapsedMs, writtenBytes: blocks * 512 });
    });
  });
  // The script is time's child: signals go to it, as they would to the step.
  return {
    pid: child.pid as number,
    kill: (signal) => {
      const script = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/)[0];
      process.kill(Number(script || child.pid), signal);
    },
    done,
  };
}

export function seedVm(request: SeedRequest): Promise<SeedRun> {
  return startSeed(request).done;
}

/** The user-data file inside a seed ISO. */
export function userDataOf(iso: string): string {
  return execFileSync("isoinfo", ["-R", "-i", iso, "-x", "/user-data"], { encoding: "utf8" });
}

/**
 * What anything on the host still holds under dir: qemu-storage-daemon processes, loop
 * devices and mounts (in any process's mount namespace) naming it. Empty when all is released.
 */
export function heldUnder(dir: string): string[] {
  const held: string[] = [];
  const loops = spawnSync("losetup", ["-l", "-n", "-O", "NAME,BACK-FILE"], { encoding: "utf8" }).stdout;
  held.push(
    ...loops
      .split("\n")
      .filter((line) => line.includes(dir))
      .map((line) => `loop device: ${line.trim()}`),
  );
  for (const pid of fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
    let cmdline = "";
    let mounts = "";
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      mounts = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.startsWith("qemu-storage-daemon") && cmdline.includes(dir)) held.push(`daemon ${pid}: ${cmdline.slice(0, 200)}`);
    for (const line of mounts.split("\n").filter((l) => l.includes(dir))) held.push(`mount in ${pid}'s namespace: ${line.split(" ")[4]}`);
  }
  return [...new Set(held)];
}

/** A command run to its end, timed, with the bytes it (and every process it waited for) wrote to storage. */
export function runMeasured(command: string[]): { status: number | null; elapsedMs: number; writtenBytes: number } {
  const timeFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sv-seed-time-")), "time");
  const started = Date.now();
  const run = spawnSync("/usr/bin/time", ["-q", "-f", "%O", "-o", timeFile, ...command], { stdio: ["ignore", "ignore", "inherit"] });
  const elapsedMs = Date.now() - started;
  const blocks = Number(fs.readFileSync(timeFile, "utf8").trim().split("\n").pop());
  fs.rmSync(path.dirname(timeFile), { recursive: true, force: true });
  return { status: run.status, elapsedMs, writtenBytes: blocks * 512 };
}
