// Each lab synthesizes into its own folder <outdir>/labs/<name> (lib/synth-output.ts),
// and <outdir>/manifest.json points cdktf commands given outdir at the last lab.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config";
import { labOutdir, publishLabManifest, relocateManifest, stackWorkingDirs, SynthManifest } from "../../lib/synth-output";
import { testLab, writeLab } from "../helpers/lab-yaml";

const tmpDirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-synth-out-"));
  tmpDirs.push(dir);
  return dir;
}
afterAll(() => tmpDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

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

function cdktfSynth(outdir: string, lab: Record<string, unknown>, stateDir: string): void {
  const result = spawnSync("npx", ["cdktf", "synth", "--output", outdir], {
    cwd: PROJECT_DIR,
    env: { ...process.env, BTW_CONFIG: writeLab(lab, tmpDir()), BTW_STATE_DIR: stateDir, CI: "1", FORCE_COLOR: "0" },
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`cdktf synth failed:\n${result.stdout}${result.stderr}`);
}

function backendPath(stackDir: string): string {
  return JSON.parse(fs.readFileSync(path.join(stackDir, "cdk.tf.json"), "utf8")).terraform.backend.local.path;
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

describe("`cdktf synth` of two labs into one output folder", () => {
  test("each lab gets its own stack folders with its own backend; <outdir>/manifest.json names the lab synthesized last", () => {
    const outdir = path.join(tmpDir(), "cdktf.out");
    const stateDir = path.join(tmpDir(), "state");
    cdktfSynth(outdir, testLab({ name: "btwsyntha" }), stateDir);
    cdktfSynth(outdir, testLab({ name: "btwsynthb" }), stateDir);

    for (const name of ["btwsyntha", "btwsynthb"]) {
      const labDir = path.join(outdir, "labs", name);
      expect(backendPath(stackWorkingDirs(labDir).get("lab") as string)).toBe(path.join(stateDir, `${name}.tfstate`));
      expect(backendPath(path.join(labDir, "stacks", "baremetal"))).toBe(path.join(stateDir, `${name}-baremetal.tfstate`));
      expect(backendPath(path.join(labDir, "stacks", "images"))).toBe(path.join(stateDir, `${name}-images.tfstate`));
    }
    expect(fs.existsSync(path.join(outdir, "stacks"))).toBe(false);
    // The cdktf CLI resolves a stack's workingDirectory against the outdir it was given, as stackWorkingDirs does.
    expect(stackWorkingDirs(outdir).get("lab")).toBe(path.join(outdir, "labs", "btwsynthb", "stacks", "lab"));
  }, 180_000);

  test("--output cdktf.out/labs/<name> synthesizes there, without a second labs/ level", () => {
    const labDir = path.join(tmpDir(), "cdktf.out", "labs", "btwsynthc");
    cdktfSynth(labDir, testLab({ name: "btwsynthc" }), path.join(tmpDir(), "state"));
    expect(fs.readdirSync(labDir).sort()).toEqual(["manifest.json", "stacks"]);
    expect(stackWorkingDirs(labDir).get("lab")).toBe(path.join(labDir, "stacks", "lab"));
  }, 120_000);
});
