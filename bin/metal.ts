// `btw metal reinstall NAME`: the bare-metal machine NAME of the lab config is
// restored again at its next network boot (scripts/steps/pxe-server.sh reinstall);
// with a BMC, that boot is set and the machine powered (lib/bmc/install-power.ts).
// `btw metal power NAME on|off|cycle|status`: its power, through its BMC (lib/bmc).
import { spawnSync } from "child_process";
import * as path from "path";
import { bmcDriver, BmcError } from "../lib/bmc/driver";
import { powerForInstall } from "../lib/bmc/install-power";
import { ConfigError, loadConfig, MachineConfig } from "../lib/config/config";
import { pxeRecordsDir, pxeServerDir } from "../lib/config/names";
import { SCRIPTS_DIR } from "../lib/paths";

const USAGE = "usage: btw metal reinstall NAME\n       btw metal power NAME on|off|cycle|status";
const POWER = ["on", "off", "cycle", "status"] as const;

async function main(args: string[]): Promise<number> {
  const [command, name, action] = args;
  if (!((command === "reinstall" && args.length === 2) || (command === "power" && args.length === 3))) {
    console.error(USAGE);
    return 2;
  }
  const lab = loadConfig();
  const machine = lab.baremetal.machines.find((m) => m.name === name);
  if (!machine) {
    const names = lab.baremetal.machines.map((m) => m.name).join(", ") || "none";
    console.error(`btw: lab ${lab.name} has no bare-metal machine '${name}' (its machines: ${names})`);
    return 1;
  }
  if (command === "power") return power(machine, action);
  const script = path.join(SCRIPTS_DIR, "pxe-server.sh");
  const stateDir = pxeServerDir(lab.baremetal.pxe.stateDir, lab.name);
  const result = spawnSync("sh", [script, "reinstall", "--state-dir", stateDir, "--mac", machine.mac], { stdio: "inherit" });
  if (result.status !== 0 || !machine.bmc) return result.status ?? 1;
  await powerForInstall(machine, pxeRecordsDir(stateDir), (line) => console.log(`btw-img: ${line}`));
  return 0;
}

async function power(machine: MachineConfig, action: string): Promise<number> {
  if (!(POWER as readonly string[]).includes(action)) {
    console.error(`btw: metal power: '${action}' is not one of ${POWER.join(", ")}\n${USAGE}`);
    return 2;
  }
  const bmc = bmcDriver(machine);
  if (action !== "status") await bmc.power(action as "on" | "off" | "cycle");
  console.log(`${machine.name}: ${await bmc.powerState()}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
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
