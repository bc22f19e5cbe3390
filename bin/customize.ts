// Customizes one profile of the lab config (lab.yaml or BTW_CONFIG) from a base
// image, as the stacks' customize step does: lib/config/profile.ts resolves the profile
// for the lab's release and scripts/steps/customize-image.sh applies it. For the CI
// image jobs and for building an image by hand (as root):
//   ts-node --transpile-only bin/customize.ts PROFILE BASE OUTPUT.qcow2   (BASE: the acquired raw disk, or a qcow2)
import { spawnSync } from "child_process";
import * as path from "path";
import { ConfigError, enforcesSecureBoot, loadConfig } from "../lib/config/config";
import { customizeArgs } from "../lib/constructs/customized-image";
import { SCRIPTS_DIR } from "../lib/constructs/host-step";
import { ProfileError, readProfile } from "../lib/config/profile";

function main(args: string[]): number {
  if (args.length !== 3) {
    console.error("usage: bin/customize.ts PROFILE BASE OUTPUT.qcow2");
    return 2;
  }
  const [profile, base, output] = args;
  const lab = loadConfig();
  const script = path.join(SCRIPTS_DIR, "customize-image.sh");
  const customize = customizeArgs(readProfile(lab.profilesDir, profile, lab.release), lab.release, base, output, { secureBoot: enforcesSecureBoot(lab.libvirt.firmware) });
  const result = spawnSync("sh", [script, ...customize], { stdio: "inherit" });
  return result.status ?? 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof ConfigError || error instanceof ProfileError)) throw error;
  console.error(`btw-img: ${error.message}`);
  process.exitCode = 1;
}
