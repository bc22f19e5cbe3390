// `cdktf synth` (the real cdktf CLI) puts each lab into its own folder
// <outdir>/labs/<name>, and <outdir>/manifest.json names the lab synthesized last.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { stackWorkingDirs } from "../../lib/plan/synth-output";
import { testLab, writeLab } from "../../testkit/lab-yaml";
import { tempDirs } from "../helpers/temp-dirs";

const tmpDir = tempDirs("btw-synth-out-");
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

  test("the lab's synth folder and the state folder are its owner's alone; a state file the engine left 0644 becomes 0600", () => {
    const outdir = path.join(tmpDir(), "cdktf.out");
    const stateDir = path.join(tmpDir(), "state");
    fs.mkdirSync(stateDir, { mode: 0o755 });
    fs.chmodSync(stateDir, 0o755);
    fs.writeFileSync(path.join(stateDir, "btwsynthd.tfstate"), "{}\n", { mode: 0o644 });
    fs.chmodSync(path.join(stateDir, "btwsynthd.tfstate"), 0o644);
    cdktfSynth(outdir, testLab({ name: "btwsynthd" }), stateDir);
    const mode = (file: string) => fs.statSync(file).mode & 0o777;
    expect({ labDir: mode(path.join(outdir, "labs", "btwsynthd")), stateDir: mode(stateDir), state: mode(path.join(stateDir, "btwsynthd.tfstate")) }).toEqual({
      labDir: 0o700,
      stateDir: 0o700,
      state: 0o600,
    });
  }, 120_000);
});
