// btw-img: load the lab config, build the stacks, synthesize.
import * as fs from "fs";
import * as path from "path";
import { App, LocalBackend } from "./lib/cdk";
import { ConfigError, loadConfig, PROJECT_DIR } from "./lib/config/config";
import { ImageChecksumError } from "./lib/config/image-release";
import { ProfileError } from "./lib/config/profile";
import { DEFAULT_OUTDIR, forgetMovedBackend, labOutdir, publishLabManifest, stackWorkingDirs } from "./lib/plan/synth-output";
import { BaremetalStack } from "./stacks/baremetal-stack";
import { ImagesStack } from "./stacks/images-stack";
import { LabStack } from "./stacks/lab-stack";

try {
  const lab = loadConfig();
  // Each lab in its own folder (lib/plan/synth-output.ts); cdktf's App creates only its last folder.
  const outdir = process.env.CDKTF_OUTDIR || DEFAULT_OUTDIR;
  const labDir = labOutdir(outdir, lab.name);
  fs.mkdirSync(labDir, { recursive: true });
  // cdktf's only validation here runs `terraform version` for terraform_data;
  // setup-host.sh already guarantees an engine >= 1.5, and synth must work without one.
  const app = new App({ outdir: labDir, skipValidation: true });
  // One state file per lab name, so labs selected with BTW_CONFIG never share state.
  const stateDir = process.env.BTW_STATE_DIR || path.join(PROJECT_DIR, ".btw", "state");
  const statePaths = {
    lab: path.join(stateDir, `${lab.name}.tfstate`),
    baremetal: path.join(stateDir, `${lab.name}-baremetal.tfstate`),
    images: path.join(stateDir, `${lab.name}-images.tfstate`),
  };
  new LocalBackend(new LabStack(app, "lab", lab), { path: statePaths.lab });
  new LocalBackend(new BaremetalStack(app, "baremetal", lab), { path: statePaths.baremetal });
  // CI's image job may name the profiles to build (space-separated); empty: the lab's.
  const profiles = (process.env.BTW_PROFILES ?? "").split(/\s+/).filter(Boolean);
  new LocalBackend(new ImagesStack(app, "images", lab, { profiles: profiles.length > 0 ? profiles : undefined }), { path: statePaths.images });
  app.synth();
  for (const [stack, workingDir] of stackWorkingDirs(labDir)) {
    const statePath = statePaths[stack as keyof typeof statePaths];
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
