// The bare-metal stack's power step of one machine (lib/constructs/machine-power.ts):
//   install-power.ts --records DIR      with BTW_MACHINE: the machine's config as JSON (no password)
// Boots the machine into its install through its BMC unless the records hold it as installed.
import { BmcError } from "../lib/bmc/driver";
import { powerForInstall } from "../lib/bmc/install-power";
import { MachineConfig } from "../lib/config/types";

async function main(args: string[]): Promise<number> {
  if (args.length !== 2 || args[0] !== "--records" || !process.env.BTW_MACHINE) {
    console.error("usage: BTW_MACHINE=JSON install-power.ts --records DIR");
    return 2;
  }
  const machine = JSON.parse(process.env.BTW_MACHINE) as MachineConfig;
  await powerForInstall(machine, args[1], (line) => console.log(`btw-img: ${line}`));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (!(error instanceof BmcError)) throw error;
    console.error(`btw-img: ${error.message}`);
    process.exitCode = 1;
  },
);
