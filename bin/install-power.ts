// The bare-metal stack's power step of one machine (lib/constructs/machine-power.ts):
//   install-power.ts --records DIR --report-timeout S --power-retries N
// with BTW_MACHINE: the machine's config as JSON (no password). Boots the machine into its
// install through its BMC unless the records hold it as installed, then follows its reports
// until done (exit 0) or failed, retrying a silent machine by power cycles (exit 1, the reason).
import { BmcError } from "../lib/bmc/driver";
import { followInstall, powerForInstall } from "../lib/bmc/install-power";
import { MachineConfig } from "../lib/config/types";

const USAGE = "usage: BTW_MACHINE=JSON install-power.ts --records DIR --report-timeout SECONDS --power-retries N";

async function main(args: string[]): Promise<number> {
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) options.set(args[i], args[i + 1]);
  const [records, timeout, retries] = ["--records", "--report-timeout", "--power-retries"].map((name) => options.get(name));
  if (!process.env.BTW_MACHINE || !records || !/^\d+$/.test(timeout ?? "") || !/^\d+$/.test(retries ?? "") || options.size !== 3) {
    console.error(USAGE);
    return 2;
  }
  const machine = JSON.parse(process.env.BTW_MACHINE) as MachineConfig;
  const say = (line: string) => console.log(`btw-img: ${line}`);
  if ((await powerForInstall(machine, records, say)) === "installed") return 0;
  await followInstall(machine, records, { reportTimeout: Number(timeout), powerRetries: Number(retries) }, say);
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
