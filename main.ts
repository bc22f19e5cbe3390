// btw-img: load the lab config, build the stacks, synthesize.
import * as fs from "fs";
import { App } from "./lib/cdk";
import { ConfigError, loadConfig } from "./lib/config/config";
import { ImageChecksumError } from "./lib/config/image-release";
import { ProfileError } from "./lib/config/profile";
import { protectStateDir, useStateBackend } from "./lib/plan/state-backend";
import { DEFAULT_OUTDIR, forgetMovedBackend, labOutdir, publishLabManifest, stackWorkingDirs } from "./lib/plan/synth-output";
import { BaremetalStack } from "./stacks/baremetal-stack";
import { ImagesStack } from "./stacks/images-stack";
import { LabStack } from "./stacks/lab-stack";

try {
  const lab = loadConfig();
  // Each lab in its own folder (lib/plan/synth-output.ts); cdktf's App creates only its last folder.
  const outdir = process.env.CDKTF_OUTDIR || DEFAULT_OUTDIR;
  const labDir = labOutdir(outdir, lab.name);
  // Its stacks hold the machines' user data (the seed steps' environment): the owner's alone.
  fs.mkdirSync(labDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(labDir, 0o700);
  if (lab.state.backend !== "pg") protectStateDir();
  // cdktf's only validation here runs `terraform version` for terraform_data;
  // setup-host.sh already guarantees an engine >= 1.5, and synth must work without one.
  const app = new App({ outdir: labDir, skipValidation: true });
  // One state per lab name and stack, so labs selected with BTW_CONFIG never share state.
  const statePaths: Record<string, string | undefined> = {};
  statePaths.lab = useStateBackend(new LabStack(app, "lab", lab), lab, "lab");
  statePaths.baremetal = useStateBackend(new BaremetalStack(app, "baremetal", lab), lab, "baremetal");
  // CI's image job may name the profiles to build (space-separated); empty: the lab's.
  const profiles = (process.env.BTW_PROFILES ?? "").split(/\s+/).filter(Boolean);
  statePaths.images = useStateBackend(new ImagesStack(app, "images", lab, { profiles: profiles.length > 0 ? profiles : undefined }), lab, "images");
  app.synth();
  for (const [stack, workingDir] of stackWorkingDirs(labDir)) {
    const statePath = statePaths[stack];
    const before = statePath && forgetMovedBackend(workingDir, statePath);
    if (before) console.error(`btw-img: stack ${stack} of lab ${lab.name} now keeps its state in ${statePath} (BTW_STATE_DIR); ${before} is left as it is`);
  }
  // So that cdktf commands given the shared outdir (`cdktf deploy lab`) find this lab.
  publishLabManifest(outdir, labDir);
} catch (error) {
  if (error instanceof ConfigError || error instanceof ProfileError || error instanceof ImageChecksumError) {
    console.error(`btw-img: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
