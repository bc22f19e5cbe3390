// Powering a machine for its install and following it: the next boot from the
// network, once, then power on (or a cycle when it is on); then its reports until
// done. A machine that reports nothing for reportTimeout seconds is power cycled
// into its install again, up to powerRetries times, then marked failed with the
// reason (in the records: btw metal status). A machine the server's records hold as installed (done, or kept: its
// disks hold an install left as it was) is left as it is, unless a reinstall
// marked it; so a deploy never restarts a machine in use, and a managed machine
// may keep its disk first in its boot order.
import * as fs from "fs";
import * as path from "path";
import { MachineConfig } from "../config/types";
import { machineRecord, recordReport } from "../metal/records";
import { BmcDriver, bmcDriver, BmcError } from "./driver";

export interface FollowOptions {
  reportTimeout: number;
  powerRetries: number;
  /** Seconds between looks at the records (default 2). */
  pollSeconds?: number;
  /** The states that end it (default: done, kept), and what it is, for messages (default: install). */
  until?: string[];
  what?: string;
}

/** The machine's state in the server's records folder: installed (done or kept, no reinstall asked), or not. */
export function installedRecord(recordsDir: string, mac: string): string | undefined {
  const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "");
  const record = read(path.join(recordsDir, mac));
  if ((record === "done" || record === "kept") && !fs.existsSync(path.join(recordsDir, `${mac}.replace`))) return record;
  return undefined;
}

async function bootIntoInstall(machine: MachineConfig, bmc: BmcDriver, recordsDir: string, say: (line: string) => void): Promise<void> {
  await bmc.bootOnceFromNetwork();
  const state = await bmc.powerState();
  await bmc.power(state === "on" ? "cycle" : "on");
  const done = `${state === "on" ? "power cycled" : "powered on"} through its BMC (${machine.bmc?.driver} ${machine.bmc?.host})`;
  // btw metal status shows it until the deploy environment reports.
  recordReport(recordsDir, machine.mac, "powering-on", done);
  say(`${machine.name}: next boot from the network, once; ${done}`);
}

/** Boots MACHINE into its install through its BMC unless it is installed; says what it did. */
export async function powerForInstall(machine: MachineConfig, recordsDir: string, say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<"installed" | "powered"> {
  const installed = installedRecord(recordsDir, machine.mac);
  if (installed) {
    say(`${machine.name}: installed (${installed} in ${recordsDir}): left as it is`);
    return "installed";
  }
  await bootIntoInstall(machine, bmcDriver(machine, env), recordsDir, say);
  return "powered";
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/**
 * Follows MACHINE's reports after it was powered into its install (or erase), saying each new state or
 * percent, until done or kept; a silence of reportTimeout seconds is retried by a power cycle.
 * Throws a BmcError with the reason when the install failed or retries ran out.
 */
export async function followInstall(machine: MachineConfig, recordsDir: string, options: FollowOptions, say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const bmc = bmcDriver(machine, env);
  const now = () => Date.now() / 1000;
  // Only reports after this power-on count: the log keeps earlier installs' too.
  let since = now();
  let cycles = 0;
  let shown = "";
  for (;;) {
    const record = machineRecord(recordsDir, machine.mac);
    const fresh = record.reports.filter((report) => report.at >= Math.floor(since));
    const last = fresh[fresh.length - 1];
    const state = last?.state ?? "powering-on";
    const line = `${state}${last?.percent !== undefined ? ` ${last.percent} %` : ""}${last?.note ? ` (${last.note})` : ""}`;
    if (line !== shown) say(`${machine.name}: ${line}`);
    shown = line;
    if (last && (options.until ?? ["done", "kept"]).includes(state)) return state;
    if (last && state === "failed") throw new BmcError(`machine ${machine.name}: its ${options.what ?? "install"} failed: ${last.note || "no reason given"} (btw metal status)`);
    const quiet = now() - Math.max(since, last?.at ?? 0);
    if (quiet >= options.reportTimeout) {
      if (cycles >= options.powerRetries) {
        const silence = `no report for ${options.reportTimeout} s in state ${state} after ${cycles} power cycle${cycles === 1 ? "" : "s"}`;
        // btw metal status shows it failed, with why.
        recordReport(recordsDir, machine.mac, "failed", silence);
        throw new BmcError(`machine ${machine.name}: ${silence} (baremetal.report_timeout, baremetal.power_retries): check its console, network link and boot order`);
      }
      cycles++;
      say(`${machine.name}: no report for ${options.reportTimeout} s in state ${state}: power cycle ${cycles} of ${options.powerRetries}`);
      await bootIntoInstall(machine, bmc, recordsDir, say);
      since = now();
    }
    await sleep(options.pollSeconds ?? 2);
  }
}
