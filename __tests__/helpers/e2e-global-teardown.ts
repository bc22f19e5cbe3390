// After the end-to-end tests: whatever a test still holds (its afterAll did not
// get to release it) is released here, so it does not outlive the run.
import { finishHeldRecords } from "../../testkit/held";

export default async function globalTeardown(): Promise<void> {
  finishHeldRecords("e2e");
}
