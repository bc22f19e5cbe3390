// btw-img: load the lab config, build the stacks, synthesize.
import { App } from "./lib/cdk";
import { ConfigError, loadConfig } from "./lib/config";
import { ProfileError } from "./lib/profile";
import { LabStack } from "./stacks/lab-stack";

try {
  const lab = loadConfig();
  const app = new App();
  new LabStack(app, "lab", lab);
  app.synth();
} catch (error) {
  if (error instanceof ConfigError || error instanceof ProfileError) {
    console.error(`btw-img: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
