// End-to-end tests need the environment that `npm test` sources from
// .btw/env.sh (engine, CLI config with the provider mirror, cache folder).
// Here, in jest's own process, also the net under testkit/held.ts: a run that
// is interrupted releases what its tests still hold.
import { startHeldRecords } from "../../testkit/held";

export default async function globalSetup(): Promise<void> {
  for (const name of ["TERRAFORM_BINARY_NAME", "TF_CLI_CONFIG_FILE", "BTW_CACHE_DIR"]) {
    if (!process.env[name]) {
      throw new Error(`${name} is not set: run the end-to-end tests through \`npm test\`, which prepares the host and sources .btw/env.sh`);
    }
  }
  startHeldRecords("e2e");
}
