// What an end-to-end test holds outside its own folders (libvirt objects, a PXE
// server, a network namespace, a daemon), recorded while it holds them. A test
// releases its own in afterAll; when the run is interrupted (SIGINT, SIGTERM,
// SIGHUP) or a test leaves a record behind, e2e-global-setup.ts releases what
// is still recorded, so no run leaves the host holding them.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config";
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

/** The folder the records live in, made by the global setup (BTW_HELD_DIR). */
const recordsDir = () => process.env.BTW_HELD_DIR;

/** Releases everything in held; quiet and idempotent, so it can run more than once. */
export function releaseHeld(held: Held): void {
  for (const prefix of held.libvirtPrefixes ?? []) forceCleanup(prefix);
  for (const stateDir of held.pxeStateDirs ?? []) {
    spawnSync("sh", [path.join(PROJECT_DIR, "scripts", "pxe-server.sh"), "stop", "--state-dir", stateDir], { stdio: "ignore" });
  }
  for (const pidFile of held.pidFiles ?? []) {
    if (!fs.existsSync(pidFile)) continue;
    spawnSync("kill", [fs.readFileSync(pidFile, "utf8").trim()]);
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
