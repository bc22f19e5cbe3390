// btw-img: load the lab config, build the stacks, synthesize.
import * as fs from "fs";
import * as path from "path";
import { App, LocalBackend } from "./lib/cdk";
import { ConfigError, loadConfig, PROJECT_DIR } from "./lib/config";
import { ImageChecksumError } from "./lib/image-release";
import { ProfileError } from "./lib/profile";
import { DEFAULT_OUTDIR, labOutdir, publishLabManifest } from "./lib/synth-output";
import { BaremetalStack } from "./stacks/baremetal-stack";
import { LabStack } from "./stacks/lab-stack";

try {
  const lab = loadConfig();
  // Each lab in its own folder (lib/synth-output.ts); cdktf's App creates only its last folder.
  const outdir = process.env.CDKTF_OUTDIR || DEFAULT_OUTDIR;
  const labDir = labOutdir(outdir, lab.name);
  fs.mkdirSync(labDir, { recursive: true });
  // cdktf's only validation here runs `terraform version` for terraform_data;
  // setup-host.sh already guarantees an engine >= 1.5, and synth must work without one.
  const app = new App({ outdir: labDir, skipValidation: true });
  const labStack = new LabStack(app, "lab", lab);
  // One state file per lab name, so labs selected with BTW_CONFIG never share state.
  const stateDir = process.env.BTW_STATE_DIR || path.join(PROJECT_DIR, ".btw", "state");
  new LocalBackend(labStack, { path: path.join(stateDir, `${lab.name}.tfstate`) });
  const baremetalStack = new BaremetalStack(app, "baremetal", lab);
  new LocalBackend(baremetalStack, { path: path.join(stateDir, `${lab.name}-baremetal.tfstate`) });
  app.synth();
  // So that cdktf commands given the shared outdir (`cdktf deploy lab`) find this lab.
  publishLabManifest(outdir, labDir);
} catch (error) {
  if (error instanceof ConfigError || error instanceof ProfileError || error instanceof ImageChecksumError) {
    console.error(`btw-img: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
