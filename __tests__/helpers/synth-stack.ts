// Synthesizes a stack in memory (Testing.synth) on an app whose outdir lies in
// a folder this test file removes when it ends: Testing.app() on its own makes
// a /tmp/cdktf.outdir.* folder per call and never removes it.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, TerraformStack, Testing } from "../../lib/cdk";

let root: string | undefined;

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
  root = undefined;
});

export function synthStack(build: (app: App) => TerraformStack): any {
  root ??= fs.mkdtempSync(path.join(os.tmpdir(), "btw-synth-"));
  const app = Testing.app({ outdir: fs.mkdtempSync(path.join(root, "app-")) });
  return JSON.parse(Testing.synth(build(app)));
}
