// A bare-metal machine's BMC (baremetal.machines[].bmc): power and a one-time
// network boot, the same few operations whatever the protocol; each protocol is
// a driver (./ipmi.ts, ./redfish.ts). The password is read when a command needs
// it, from the environment variable or the file the config names, and reaches
// the protocol through a program's environment or a request header, never an
// argument or a message.
import * as fs from "fs";
import { MachineConfig } from "../config/types";
import { IpmiDriver } from "./ipmi";
import { RedfishDriver } from "./redfish";

export type PowerState = "on" | "off";

export interface BmcDriver {
  /** The chassis power as the BMC reports it. */
  powerState(): Promise<PowerState>;
  /** on, off, or cycle (a machine that is off is powered on). */
  power(action: "on" | "off" | "cycle"): Promise<void>;
  /** The next boot only from the network (in the firmware mode bmc.firmware names, if it names one); later boots follow the machine's boot order. */
  bootOnceFromNetwork(): Promise<void>;
}

export class BmcError extends Error {}

/** The BMC password of MACHINE: from the environment variable or the file (0600 or stricter, this user's) its config names. */
export function bmcPassword(machine: MachineConfig, env: NodeJS.ProcessEnv = process.env): string {
  const bmc = machine.bmc;
  if (!bmc) throw new BmcError(`machine ${machine.name} has no bmc in baremetal.machines`);
  if (bmc.passwordEnv) {
    const value = env[bmc.passwordEnv];
    if (!value) throw new BmcError(`machine ${machine.name}: the environment variable ${bmc.passwordEnv} (bmc.password_env) is not set: export it with the BMC's password`);
    return value;
  }
  const file = bmc.passwordFile as string;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new BmcError(`machine ${machine.name}: no file ${file} (bmc.password_file)`);
  }
  if ((stat.mode & 0o077) !== 0 || stat.uid !== process.getuid?.()) {
    throw new BmcError(`machine ${machine.name}: ${file} (bmc.password_file) must be this user's and readable by no one else: chmod 600 ${file}`);
  }
  const value = fs.readFileSync(file, "utf8").replace(/\r?\n$/, "");
  if (!value) throw new BmcError(`machine ${machine.name}: ${file} (bmc.password_file) is empty`);
  return value;
}

/** The driver for MACHINE's BMC. */
export function bmcDriver(machine: MachineConfig, env: NodeJS.ProcessEnv = process.env): BmcDriver {
  const bmc = machine.bmc;
  if (!bmc) throw new BmcError(`machine ${machine.name} has no bmc in baremetal.machines: power it by hand, or give its BMC`);
  const password = () => bmcPassword(machine, env);
  switch (bmc.driver) {
    case "ipmi":
      return new IpmiDriver(machine.name, bmc, password);
    case "redfish":
      return new RedfishDriver(machine.name, bmc, password);
  }
}
