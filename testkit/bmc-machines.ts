// Blank machines of a PxeLab that only their BMCs power: each is defined with its
// disks first in its boot order and left off; its BMC (OpenIPMI's ipmi_sim, or the
// Redfish stand-in) boots it from the network once through
// __tests__/fixtures/bmc-chassis.sh, as a BMC's one-time boot override does.
// bmcKey(machine) is the machine's bmc config; env() the password's variable.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BmcSim } from "./bmc-sim";
import { holdStarted } from "./held";
import { PxeLab, PxeMachine } from "./pxe-lab";
import { RedfishSim } from "./redfish-sim";

export type BmcDriverName = "ipmi" | "redfish";

const PASSWORD_ENV = "BTW_TEST_BMC_PASSWORD";

export class BmcMachines {
  private constructor(
    // IPMI 2.0 passwords have at most 20 bytes.
    private readonly password: string,
    private readonly bmcs: Map<PxeMachine, { driver: BmcDriverName; chassisDir: string; ipmi?: BmcSim; redfish?: RedfishSim }>,
    /** The BMCs' own files (their configuration holds the password), apart from the lab's. */
    private readonly dir: string,
  ) {}

  /** Releases what a killed run would leave: the simulators' processes and their folder. */
  private release = () => {};

  /** Defines each machine (disks first, off; its XML in workDir) and starts its BMC, with its files in a folder of its own. */
  static async start(lab: PxeLab, workDir: string, drivers: Map<PxeMachine, BmcDriverName>): Promise<BmcMachines> {
    const machines = new BmcMachines(crypto.randomBytes(8).toString("hex"), new Map(), fs.mkdtempSync(path.join(os.tmpdir(), "btw-bmcs-")));
    try {
      for (const [machine, driver] of drivers) {
        const dir = path.join(machines.dir, machine.name);
        const xml = lab.defineMachine(workDir, machine, true);
        const ipmi = driver === "ipmi" ? await BmcSim.start(dir, machines.password, lab.domain(machine)) : undefined;
        const chassisDir = ipmi?.chassisDir ?? path.join(dir, "chassis");
        fs.mkdirSync(chassisDir, { recursive: true });
        fs.writeFileSync(path.join(chassisDir, "domain"), lab.domain(machine));
        fs.copyFileSync(xml.defined, path.join(chassisDir, "defined.xml"));
        fs.copyFileSync(xml.networkFirst, path.join(chassisDir, "network-first.xml"));
        const redfish = driver === "redfish" ? await RedfishSim.start(path.join(dir, "redfish"), "admin", machines.password, { [machine.name]: { chassisDir } }) : undefined;
        machines.bmcs.set(machine, { driver, chassisDir, ipmi, redfish });
      }
    } catch (error) {
      await machines.stop();
      throw error;
    }
    const pidFiles = [...machines.bmcs.values()].flatMap((bmc) => (bmc.ipmi ? [bmc.ipmi.pidFile] : []));
    machines.release = holdStarted(`bmcs-${path.basename(machines.dir)}`, { pidFiles, paths: [machines.dir] });
    return machines;
  }

  /** The machine's bmc key of the lab config (the password in a variable: env()). */
  bmcKey(machine: PxeMachine): Record<string, unknown> | undefined {
    const bmc = this.bmcs.get(machine);
    if (!bmc) return undefined;
    const firmware = machine.firmware === "bios" ? "bios" : "uefi";
    if (bmc.ipmi) return { driver: "ipmi", address: `127.0.0.1:${bmc.ipmi.port}`, username: "admin", password_env: PASSWORD_ENV, cipher_suite: 3, firmware };
    return { driver: "redfish", address: `127.0.0.1:${bmc.redfish!.port}`, username: "admin", password_env: PASSWORD_ENV, ca_file: bmc.redfish!.caFile, firmware };
  }

  /** What a command that powers them needs in its environment. */
  env(): Record<string, string> {
    return { [PASSWORD_ENV]: this.password };
  }

  /** The machine's chassis folder (__tests__/fixtures/bmc-chassis.sh): network-first.xml is what a one-time network boot starts. */
  chassisDir(machine: PxeMachine): string {
    const bmc = this.bmcs.get(machine);
    if (!bmc) throw new Error(`${machine.name} has no BMC here`);
    return bmc.chassisDir;
  }

  /** What the machine's chassis was told, a line each ("boot pxe", "power 1", "network boot once"). */
  actions(machine: PxeMachine): string[] {
    const file = path.join(this.bmcs.get(machine)?.chassisDir ?? "/nonexistent", "actions");
    return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  }

  async stop(): Promise<void> {
    for (const bmc of this.bmcs.values()) {
      await bmc.ipmi?.stop();
      await bmc.redfish?.stop();
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.release();
  }
}
