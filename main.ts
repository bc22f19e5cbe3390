// btw-img: load the lab config, build the stacks, synthesize.
import * as path from "path";
import { App, LocalBackend } from "./lib/cdk";
import { ConfigError, loadConfig, PROJECT_DIR } from "./lib/config";
import { ImageChecksumError } from "./lib/image-release";
import { ProfileError } from "./lib/profile";
import { BaremetalStack } from "./stacks/baremetal-stack";
import { LabStack } from "./stacks/lab-stack";

try {
  const lab = loadConfig();
  // cdktf's only validation here runs `terraform version` for terraform_data;
  // setup-host.sh already guarantees an engine >= 1.5, and synth must work without one.
  const app = new App({ skipValidation: true });
  const labStack = new LabStack(app, "lab", lab);
  // One state file per lab name, so labs selected with BTW_CONFIG never share state.
  const stateDir = process.env.BTW_STATE_DIR || path.join(PROJECT_DIR, ".btw", "state");
  new LocalBackend(labStack, { path: path.join(stateDir, `${lab.name}.tfstate`) });
  const baremetalStack = new BaremetalStack(app, "baremetal", lab);
  new LocalBackend(baremetalStack, { path: path.join(stateDir, `${lab.name}-baremetal.tfstate`) });
  app.synth();
} catch (error) {
  if (error instanceof ConfigError || error instanceof ProfileError || error instanceof ImageChecksumError) {
    console.error(`btw-img: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
