// What an end-to-end test or the benchmark holds outside its own folders
// (libvirt objects, a PXE server, a network namespace, a daemon), recorded while
// it holds them. Each releases its own when done; when the run is interrupted
// (SIGINT, SIGTERM, SIGHUP: releaseOnSignals) or leaves a record behind, what is
// still recorded is released, so no run leaves the host holding them.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR } from "../lib/constructs/host-step";
import { forceCleanup } from "./libvirt";

export interface Held {
  /** Domains, networks and pools whose names start with one of these. */
  libvirtPrefixes?: string[];
  /** State folders of pxe-server.sh instances. */
  pxeStateDirs?: string[];
  /** Files holding the pid of a daemon a test started. */
  pidFiles?: string[];
  /** Network namespaces a test made. */
  netns?: string[];
  /** Files and folders a test made outside its temporary folder. */
  paths?: string[];
}

/** The folder the records live in (BTW_HELD_DIR), made by startHeldRecords. */
const recordsDir = () => process.env.BTW_HELD_DIR;

/** Releases everything in held; quiet and idempotent, so it can run more than once. */
export function releaseHeld(held: Held): void {
  for (const prefix of held.libvirtPrefixes ?? []) forceCleanup(prefix);
  for (const stateDir of held.pxeStateDirs ?? []) {
    spawnSync("sh", [path.join(SCRIPTS_DIR, "pxe-server.sh"), "stop", "--state-dir", stateDir], { stdio: "ignore" });
  }
  for (const pidFile of held.pidFiles ?? []) {
    if (!fs.existsSync(pidFile)) continue;
    // The pid is the first line (PostgreSQL's postmaster.pid holds more).
    spawnSync("kill", [fs.readFileSync(pidFile, "utf8").split("\n")[0].trim()]);
    fs.rmSync(pidFile, { force: true });
  }
  for (const ns of held.netns ?? []) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  for (const file of held.paths ?? []) fs.rmSync(file, { recursive: true, force: true });
}

/**
 * Records what a test is about to take, after releasing what an earlier, interrupted run
 * left under the same names (the test's own); the returned function releases it and drops the record.
 */
export function hold(name: string, held: Held): () => void {
  releaseHeld(held);
  return holdStarted(name, held);
}

/**
 * Records what a test has just started under new names (temporary folders, their pid files):
 * an earlier run cannot have left them, so nothing is released first. The returned function
 * releases it and drops the record.
 */
export function holdStarted(name: string, held: Held): () => void {
  const dir = recordsDir();
  const record = dir ? path.join(dir, `${name}.json`) : undefined;
  if (record) fs.writeFileSync(record, JSON.stringify(held));
  return () => {
    releaseHeld(held);
    if (record) fs.rmSync(record, { force: true });
  };
}

/** Releases every record left in dir (an interrupted run, or an afterAll that never got there). */
export function releaseRecorded(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const names = fs.readdirSync(dir).filter((file) => file.endsWith(".json"));
  for (const file of names) {
    releaseHeld(JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Held);
    fs.rmSync(path.join(dir, file), { force: true });
  }
  return names.map((file) => file.replace(/\.json$/, ""));
}

/** Every process below pid (the engine runs in a terminal of its own, so a group signal misses it). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      // The parent pid is the 2nd field after the parenthesised command name.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const below = (p: number): number[] => (children.get(p) ?? []).flatMap((child) => [child, ...below(child)]);
  return below(pid);
}

function stopDescendants(pid: number): void {
  const pids = descendants(pid);
  for (const child of pids) {
    try {
      process.kill(child, "SIGTERM");
    } catch {
      // already gone
    }
  }
  // A moment for them to go (their own traps release loop devices and mounts).
  if (pids.length > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
}

/**
 * Makes the records folder (BTW_HELD_DIR, inherited by jest's workers) and, when this
 * process is interrupted, stops what it started and releases what is still recorded;
 * returns the folder. `who` names the run in the message ("e2e", "bench").
 */
export function startHeldRecords(who: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-held-"));
  process.env.BTW_HELD_DIR = dir;
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.once(signal, () => {
      // First what the run started (cdktf, the engine, QEMU by hand), so nothing recreates what is released.
      stopDescendants(process.pid);
      const released = releaseRecorded(dir);
      console.error(`\n${who}: ${signal}: released what ${released.join(", ") || "nothing"} still held`);
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
  }
  return dir;
}

/** At the end of a run: releases what is still recorded (an afterAll that never got there) and removes the folder. */
export function finishHeldRecords(who: string): void {
  const dir = recordsDir();
  if (!dir) return;
  const released = releaseRecorded(dir);
  if (released.length > 0) console.error(`${who}: released what ${released.join(", ")} still held after the run`);
  fs.rmSync(dir, { recursive: true, force: true });
}
