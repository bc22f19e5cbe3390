// `btw metal ...`: the lab config's bare-metal machines.
//   status [--json]             each machine's state, progress, since when, its last reports
//   inventory NAME [--json]     the hardware its deploy environment reported
//   reinstall NAME              restored again at its next network boot (pxe-server.sh
//                               reinstall); with a BMC, that boot is set, the machine powered
//                               and its install followed until done
//   release NAME [--erase quick|full]   not served any more; with --erase its next network boot
//                               erases its disks (with a BMC: powered, followed, then off)
//   power NAME on|off|cycle|status   its power, through its BMC (lib/bmc)
import { spawnSync } from "child_process";
import * as path from "path";
import { bmcDriver, BmcError } from "../lib/bmc/driver";
import { followInstall, powerForInstall } from "../lib/bmc/install-power";
import { ConfigError, LabConfig, loadConfig, MachineConfig } from "../lib/config/config";
import { pxeRecordsDir, pxeServerDir } from "../lib/config/names";
import { machineInventory, machineRecord, Report } from "../lib/metal/records";
import { SCRIPTS_DIR } from "../lib/paths";

export const METAL_USAGE = `usage: btw metal status [--json]
       btw metal inventory NAME [--json]
       btw metal reinstall NAME
       btw metal release NAME [--erase quick|full]
       btw metal power NAME on|off|cycle|status`;
const POWER = ["on", "off", "cycle", "status"] as const;

class UsageError extends Error {}

function recordsDir(lab: LabConfig): string {
  return pxeRecordsDir(pxeServerDir(lab.baremetal.pxe.stateDir, lab.name));
}

function machineNamed(lab: LabConfig, name: string): MachineConfig {
  const machine = lab.baremetal.machines.find((m) => m.name === name);
  if (machine) return machine;
  const names = lab.baremetal.machines.map((m) => m.name).join(", ") || "none";
  throw new BmcError(`lab ${lab.name} has no bare-metal machine '${name}' (its machines: ${names})`);
}

const time = (seconds: number) =>
  new Date(seconds * 1000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
const reportLine = (report: Report) => `${time(report.at)} ${report.state}${report.percent !== undefined ? ` ${report.percent} %` : ""}${report.note ? `: ${report.note}` : ""}`;

function status(lab: LabConfig, json: boolean): number {
  const dir = recordsDir(lab);
  const machines = lab.baremetal.machines.map((machine) => ({ name: machine.name, mac: machine.mac, ...machineRecord(dir, machine.mac) }));
  if (json) {
    console.log(JSON.stringify(machines, null, 2));
    return 0;
  }
  const row = (cells: string[]) => console.log(`${cells[0].padEnd(16)} ${cells[1].padEnd(18)} ${cells[2].padEnd(14)} ${cells[3].padEnd(8)} ${cells[4]}`);
  row(["MACHINE", "MAC", "STATE", "PROGRESS", "SINCE"]);
  for (const machine of machines) {
    row([machine.name, machine.mac, machine.state, machine.percent !== undefined ? `${machine.percent} %` : "-", machine.since ? time(machine.since) : "-"]);
  }
  for (const machine of machines.filter((m) => m.reports.length > 0)) {
    console.log(`\n${machine.name}, last reports:`);
    for (const report of machine.reports.slice(-3)) console.log(`  ${reportLine(report)}`);
  }
  return 0;
}

function inventory(lab: LabConfig, machine: MachineConfig, json: boolean): number {
  const found = machineInventory(recordsDir(lab), machine.mac) as
    | { disks?: Record<string, unknown>[]; nics?: Record<string, unknown>[]; cpus?: number; cpu_model?: string; memory_bytes?: number; firmware?: string; secure_boot?: boolean }
    | undefined;
  if (!found) {
    console.error(`btw: ${machine.name} has reported no inventory yet: its deploy environment reports it at its next network boot (btw metal reinstall ${machine.name})`);
    return 1;
  }
  if (json) {
    console.log(JSON.stringify(found, null, 2));
    return 0;
  }
  const gib = (bytes: unknown) => `${(Number(bytes) / 2 ** 30).toFixed(1)} GiB`;
  console.log(
    `${machine.name}: ${found.cpus} CPU (${found.cpu_model || "unknown model"}), ${gib(found.memory_bytes)} memory, firmware ${found.firmware}${found.firmware === "uefi" ? `, Secure Boot ${found.secure_boot ? "on" : "off"}` : ""}`,
  );
  console.log("disks:");
  for (const disk of found.disks ?? []) {
    console.log(`  ${disk.name} ${gib(disk.size_bytes)} ${disk.rotational ? "rotational" : "solid state"} model '${disk.model}' serial '${disk.serial}'${disk.by_id ? ` (${disk.by_id})` : ""}`);
  }
  console.log("NICs:");
  for (const nic of found.nics ?? []) {
    console.log(`  ${nic.name} ${nic.mac} link ${nic.link ? "up" : "down"}${nic.speed_mbps ? ` ${nic.speed_mbps} Mb/s` : ""} driver ${nic.driver}`);
  }
  return 0;
}

async function power(machine: MachineConfig, action: string): Promise<number> {
  if (!(POWER as readonly string[]).includes(action)) throw new UsageError(`metal power: '${action}' is not one of ${POWER.join(", ")}`);
  const bmc = bmcDriver(machine);
  if (action !== "status") await bmc.power(action as "on" | "off" | "cycle");
  console.log(`${machine.name}: ${await bmc.powerState()}`);
  return 0;
}

async function reinstall(lab: LabConfig, machine: MachineConfig): Promise<number> {
  const script = path.join(SCRIPTS_DIR, "pxe-server.sh");
  const stateDir = pxeServerDir(lab.baremetal.pxe.stateDir, lab.name);
  const result = spawnSync("sh", [script, "reinstall", "--state-dir", stateDir, "--mac", machine.mac], { stdio: "inherit" });
  if (result.status !== 0 || !machine.bmc) return result.status ?? 1;
  const say = (line: string) => console.log(`btw-img: ${line}`);
  await powerForInstall(machine, recordsDir(lab), say);
  await followInstall(machine, recordsDir(lab), { reportTimeout: lab.baremetal.reportTimeout, powerRetries: lab.baremetal.powerRetries }, say);
  return 0;
}

async function release(lab: LabConfig, machine: MachineConfig, erase: string | undefined): Promise<number> {
  if (erase !== undefined && erase !== "quick" && erase !== "full") throw new UsageError(`metal release: --erase takes quick or full, not '${erase}'`);
  const script = path.join(SCRIPTS_DIR, "pxe-server.sh");
  const stateDir = pxeServerDir(lab.baremetal.pxe.stateDir, lab.name);
  const result = spawnSync("sh", [script, "release", "--state-dir", stateDir, "--mac", machine.mac, ...(erase ? ["--erase", erase] : [])], { stdio: "inherit" });
  if (result.status !== 0) return result.status ?? 1;
  const say = (line: string) => console.log(`btw-img: ${line}`);
  if (!machine.bmc) {
    if (erase) say(`${machine.name}: power it on (network boot): its deploy environment erases its disks, reports released and powers it off`);
    return 0;
  }
  const bmc = bmcDriver(machine);
  if (erase) {
    await powerForInstall(machine, recordsDir(lab), say);
    await followInstall(machine, recordsDir(lab), { reportTimeout: lab.baremetal.reportTimeout, powerRetries: lab.baremetal.powerRetries, until: ["released"], what: "erase" }, say);
  }
  await bmc.power("off");
  say(`${machine.name}: released${erase ? ` (disks erased, ${erase})` : ""}, powered off`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const json = args.includes("--json");
  const eraseAt = args.indexOf("--erase");
  const erase = eraseAt >= 0 ? args[eraseAt + 1] : undefined;
  const words = args.filter((arg, i) => arg !== "--json" && (eraseAt < 0 || (i !== eraseAt && i !== eraseAt + 1)));
  const [command, name, action] = words;
  const shape: Record<string, number> = { status: 1, inventory: 2, reinstall: 2, release: 2, power: 3 };
  if (!(command in shape) || words.length !== shape[command] || (json && !["status", "inventory"].includes(command)) || (eraseAt >= 0 && command !== "release")) {
    throw new UsageError(
      `metal: expected ${Object.keys(shape)
        .map((c) => `'${c}'`)
        .join(", ")} with their arguments`,
    );
  }
  const lab = loadConfig();
  if (command === "status") return status(lab, json);
  const machine = machineNamed(lab, name);
  if (command === "inventory") return inventory(lab, machine, json);
  if (command === "power") return power(machine, action);
  if (command === "release") return release(lab, machine, erase);
  return reinstall(lab, machine);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof UsageError) {
        console.error(`btw: ${error.message}\n${METAL_USAGE}`);
        process.exitCode = 2;
        return;
      }
      if (error instanceof ConfigError) {
        console.error(`btw-img: ${error.message}`);
      } else if (error instanceof BmcError) {
        console.error(`btw: ${error.message}`);
      } else {
        throw error;
      }
      process.exitCode = 1;
    },
  );
}
