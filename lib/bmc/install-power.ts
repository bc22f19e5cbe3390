// Powering a machine for its install: the next boot from the network, once,
// then power on (or a cycle when it is on). A machine the server's records hold
// as installed (done, or kept: its disks hold an install left as it was) is left
// as it is, unless a reinstall marked it; so a deploy never restarts a machine
// in use, and a managed machine may keep its disk first in its boot order.
import * as fs from "fs";
import * as path from "path";
import { MachineConfig } from "../config/types";
import { bmcDriver } from "./driver";

/** The machine's state in the server's records folder: installed (done or kept, no reinstall asked), or not. */
export function installedRecord(recordsDir: string, mac: string): string | undefined {
  const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "");
  const record = read(path.join(recordsDir, mac));
  if ((record === "done" || record === "kept") && !fs.existsSync(path.join(recordsDir, `${mac}.replace`))) return record;
  return undefined;
}

/** Boots MACHINE into its install through its BMC unless it is installed; says what it did. */
export async function powerForInstall(machine: MachineConfig, recordsDir: string, say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<"installed" | "powered"> {
  const installed = installedRecord(recordsDir, machine.mac);
  if (installed) {
    say(`${machine.name}: installed (${installed} in ${recordsDir}): left as it is`);
    return "installed";
  }
  const bmc = bmcDriver(machine, env);
  await bmc.bootOnceFromNetwork();
  const state = await bmc.powerState();
  await bmc.power(state === "on" ? "cycle" : "on");
  say(`${machine.name}: next boot from the network, once; ${state === "on" ? "power cycled" : "powered on"} through its BMC (${machine.bmc?.driver} ${machine.bmc?.host})`);
  return "powered";
}
