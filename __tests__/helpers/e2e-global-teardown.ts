// After the end-to-end tests: whatever a test still holds (its afterAll did not
// get to release it) is released here, so it does not outlive the run.
import * as fs from "fs";
import { releaseRecorded } from "./held";

export default async function globalTeardown(): Promise<void> {
  const dir = process.env.BTW_HELD_DIR;
  if (!dir) return;
  const released = releaseRecorded(dir);
  if (released.length > 0) console.error(`e2e: released what ${released.join(", ")} still held after the run`);
  fs.rmSync(dir, { recursive: true, force: true });
}
