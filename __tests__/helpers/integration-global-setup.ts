// Integration tests run the real engine, the cdktf CLI and the CI tools: they
// need what .btw/env.sh exports, which `npm run test:integration` does not source.
import { useHostEnv } from "../../testkit/host-env";

export default async function globalSetup(): Promise<void> {
  useHostEnv();
}
