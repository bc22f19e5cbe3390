// End-to-end tests need the environment that `npm test` sources from
// .btw/env.sh (engine, CLI config with the provider mirror, cache folder).
// Here, in jest's own process, also the net under helpers/held.ts: a run that
// is interrupted releases what its tests still hold.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { releaseRecorded } from "./held";

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

export default async function globalSetup(): Promise<void> {
  for (const name of ["TERRAFORM_BINARY_NAME", "TF_CLI_CONFIG_FILE", "BTW_CACHE_DIR"]) {
    if (!process.env[name]) {
      throw new Error(`${name} is not set: run the end-to-end tests through \`npm test\`, which prepares the host and sources .btw/env.sh`);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-held-"));
  process.env.BTW_HELD_DIR = dir;
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.once(signal, () => {
      // First what the tests started (cdktf, the engine, QEMU by hand), so nothing recreates what is released.
      stopDescendants(process.pid);
      const released = releaseRecorded(dir);
      console.error(`\ne2e: ${signal}: released what ${released.join(", ") || "no test"} still held`);
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
  }
}
