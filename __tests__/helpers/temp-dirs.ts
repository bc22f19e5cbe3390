// Temporary folders for one test file, all removed after its last test.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** A maker of folders named <prefix>XXXXXX under the system's temporary folder, removed in afterAll. */
export function tempDirs(prefix: string): () => string {
  const made: string[] = [];
  afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));
  return () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}
