// Each lab synthesizes into its own folder <outdir>/labs/<name> (lib/plan/synth-output.ts),
// and <outdir>/manifest.json points cdktf commands given outdir at the last lab.
import * as fs from "fs";
import * as path from "path";
import { labOutdir, publishLabManifest, relocateManifest, stackWorkingDirs, SynthManifest } from "../../lib/plan/synth-output";
import { tempDirs } from "../helpers/temp-dirs";

const tmpDir = tempDirs("btw-synth-out-");
function labManifest(): SynthManifest {
  const stack = (name: string) => ({
    name,
    constructPath: name,
    workingDirectory: `stacks/${name}`,
    synthesizedStackPath: `stacks/${name}/cdk.tf.json`,
    stackMetadataPath: `stacks/${name}/metadata.json`,
    annotations: [],
    dependencies: [],
  });
  return { version: "0.21.0", stacks: { lab: stack("lab"), baremetal: stack("baremetal") } };
}

describe("labOutdir", () => {
  test("nests a lab under labs/<name> of any output folder, relative ones resolved", () => {
    expect(labOutdir("/work/cdktf.out", "web")).toBe("/work/cdktf.out/labs/web");
    expect(labOutdir("/tmp/x", "web")).toBe("/tmp/x/labs/web");
    expect(labOutdir("cdktf.out", "web")).toBe(path.resolve("cdktf.out/labs/web"));
  });

  test("does not nest again when the folder already is the lab's own", () => {
    expect(labOutdir("/work/cdktf.out/labs/web", "web")).toBe("/work/cdktf.out/labs/web");
    expect(labOutdir("/work/cdktf.out/labs/web/", "web")).toBe("/work/cdktf.out/labs/web");
    // another lab's folder is not this lab's
    expect(labOutdir("/work/cdktf.out/labs/db", "web")).toBe("/work/cdktf.out/labs/db/labs/web");
  });
});

describe("the shared manifest", () => {
  test("relocateManifest prefixes every path of each stack and keeps the rest", () => {
    const relocated = relocateManifest(labManifest(), "/o", "/o/labs/web");
    expect(relocated.version).toBe("0.21.0");
    expect(relocated.stacks.lab).toEqual({
      ...labManifest().stacks.lab,
      workingDirectory: "labs/web/stacks/lab",
      synthesizedStackPath: "labs/web/stacks/lab/cdk.tf.json",
      stackMetadataPath: "labs/web/stacks/lab/metadata.json",
    });
    expect(relocated.stacks.baremetal.workingDirectory).toBe("labs/web/stacks/baremetal");
  });

  test("publishLabManifest replaces <outdir>/manifest.json whole and leaves no temporary file", () => {
    const outdir = tmpDir();
    const labDir = path.join(outdir, "labs", "web");
    fs.mkdirSync(labDir, { recursive: true });
    fs.writeFileSync(path.join(labDir, "manifest.json"), JSON.stringify(labManifest()));
    fs.writeFileSync(path.join(outdir, "manifest.json"), "{ from another lab");
    publishLabManifest(outdir, labDir);
    expect(fs.readdirSync(outdir).sort()).toEqual(["labs", "manifest.json"]);
    expect(stackWorkingDirs(outdir).get("lab")).toBe(path.join(labDir, "stacks", "lab"));
  });

  test("publishLabManifest leaves the lab's own manifest alone when synth wrote straight into the lab's folder", () => {
    const labDir = path.join(tmpDir(), "labs", "web");
    fs.mkdirSync(labDir, { recursive: true });
    fs.writeFileSync(path.join(labDir, "manifest.json"), JSON.stringify(labManifest()));
    publishLabManifest(labDir, labDir);
    expect(JSON.parse(fs.readFileSync(path.join(labDir, "manifest.json"), "utf8"))).toEqual(labManifest());
  });
});
