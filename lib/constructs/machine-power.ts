// The power of one bare-metal machine that has a BMC (bin/install-power.ts):
// once its PXE server has started (again), the machine's next boot is set to the
// network, once, and the machine powered on or cycled, unless the server's
// records hold it as installed; then the step follows its reports until done,
// power cycling a silent machine, so the deploy ends when the machine is
// installed or says why it is not. Its replacement follows the server's, so a
// new seed or image reaches machines not yet installed without a person at them.
// Destroying it does nothing: a machine removed from the config keeps running.
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { MachineConfig } from "../config/types";
import { PROJECT_DIR } from "../paths";
import { terraformLiterals } from "../terraform-string";
import { shellQuote } from "./host-step";

export interface MachinePowerProps {
  machine: MachineConfig;
  /** Seconds without a report before a power cycle, and how many cycles before failed. */
  reportTimeout: number;
  powerRetries: number;
  /** The server's records folder: which machines are installed. */
  recordsDir: string;
  /** The server's step: the power step runs after it, and again after each replacement. */
  server: TerraformData;
}

export class MachinePower extends Construct {
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: MachinePowerProps) {
    super(scope, id);
    const { machine } = props;
    if (!machine.bmc) throw new Error(`machine ${machine.name} has no bmc`);
    const entry = path.join(PROJECT_DIR, "bin", "install-power.ts");
    const tsNode = path.join(PROJECT_DIR, "node_modules", ".bin", "ts-node");
    const bmc = machine.bmc;
    this.step = new TerraformData(
      this,
      "power",
      terraformLiterals({
        triggersReplace: {
          machine: `${machine.name} ${machine.mac}`,
          bmc: `${bmc.driver} ${bmc.host}${bmc.port ? `:${bmc.port}` : ""} ${bmc.username}`,
          server: props.server.id,
        },
        dependsOn: [props.server],
        provisioners: [
          {
            type: "local-exec",
            command: [tsNode, "--transpile-only", entry, "--records", props.recordsDir, "--report-timeout", String(props.reportTimeout), "--power-retries", String(props.powerRetries)]
              .map(shellQuote)
              .join(" "),
            // The machine's config without its user data; the password stays in the variable or file it names.
            environment: { BTW_MACHINE: JSON.stringify({ ...machine, userData: {} }) },
          },
        ],
      }),
    );
  }
}
