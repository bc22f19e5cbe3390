// `btw metal reinstall NAME`: the bare-metal machine NAME of the lab config is
// restored again at its next network boot (scripts/steps/pxe-server.sh reinstall).
import { spawnSync } from "child_process";
import * as path from "path";
import { ConfigError, loadConfig } from "../lib/config/config";
import { SCRIPTS_DIR } from "../lib/constructs/host-step";
import { pxeServerDir } from "../lib/config/names";

function main(args: string[]): number {
  if (args.length !== 2 || args[0] !== "reinstall") {
    console.error("usage: btw metal reinstall NAME");
    return 2;
  }
  const lab = loadConfig();
  const machine = lab.baremetal.machines.find((m) => m.name === args[1]);
  if (!machine) {
    const names = lab.baremetal.machines.map((m) => m.name).join(", ") || "none";
    console.error(`btw: lab ${lab.name} has no bare-metal machine '${args[1]}' (its machines: ${names})`);
    return 1;
  }
  const script = path.join(SCRIPTS_DIR, "pxe-server.sh");
  const result = spawnSync("sh", [script, "reinstall", "--state-dir", pxeServerDir(lab.baremetal.pxe.stateDir, lab.name), "--mac", machine.mac], { stdio: "inherit" });
  return result.status ?? 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`btw-img: ${error.message}`);
  process.exitCode = 1;
}
