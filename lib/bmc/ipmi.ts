// IPMI over LAN (RMCP+, lanplus) through ipmitool: chassis power and the boot
// device of the next boot. The password goes to ipmitool as IPMI_PASSWORD (-E).
import { spawnSync } from "child_process";
import { BmcConfig } from "../config/types";
import { BmcDriver, BmcError, PowerState } from "./driver";

export class IpmiDriver implements BmcDriver {
  constructor(
    private readonly machine: string,
    private readonly bmc: BmcConfig,
    private readonly password: () => string,
  ) {}

  async powerState(): Promise<PowerState> {
    const out = this.ipmitool(["chassis", "power", "status"]);
    const state = /Chassis Power is (on|off)/.exec(out)?.[1];
    if (!state) throw new BmcError(`machine ${this.machine}: the BMC at ${this.where()} answered no power state: ${out.trim()}`);
    return state as PowerState;
  }

  async power(action: "on" | "off" | "cycle"): Promise<void> {
    // A cycle of a machine that is off is refused by many BMCs: power it on.
    const command = action === "cycle" && (await this.powerState()) === "off" ? "on" : action;
    this.ipmitool(["chassis", "power", command]);
  }

  async bootOnceFromNetwork(): Promise<void> {
    // Without options=persistent the boot flags hold for the next boot only.
    this.ipmitool(["chassis", "bootdev", "pxe", ...(this.bmc.firmware === "uefi" ? ["options=efiboot"] : [])]);
  }

  private where(): string {
    return `${this.bmc.host}${this.bmc.port ? `:${this.bmc.port}` : ""}`;
  }

  private ipmitool(command: string[]): string {
    const args = [
      "-I",
      "lanplus",
      "-H",
      this.bmc.host,
      ...(this.bmc.port ? ["-p", String(this.bmc.port)] : []),
      "-U",
      this.bmc.username,
      "-E",
      "-N",
      "2",
      "-R",
      "3",
      ...(this.bmc.cipherSuite !== undefined ? ["-C", String(this.bmc.cipherSuite)] : []),
      ...command,
    ];
    const run = spawnSync("ipmitool", args, { encoding: "utf8", env: { ...process.env, IPMI_PASSWORD: this.password() }, timeout: 60_000 });
    if (run.error) throw new BmcError(`machine ${this.machine}: cannot run ipmitool (${run.error.message}): install ipmitool`);
    // Simulators and older BMCs do not list their cipher suites; ipmitool then goes on with its default.
    const errors = run.stderr.split("\n").filter((line) => line.trim() && !/Unable to Get Channel Cipher Suites/.test(line));
    if (run.status !== 0) {
      throw new BmcError(
        `machine ${this.machine}: the BMC at ${this.where()} (user ${this.bmc.username}) refused or did not answer 'ipmitool ${command.join(" ")}': ${errors.join("; ") || `exit ${run.status}`}`,
      );
    }
    return run.stdout;
  }
}
