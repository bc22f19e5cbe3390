// `cdktf synth` (the real cdktf CLI running main.ts) writes the lab stack, or
// refuses a bad config naming the file and key.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { testLab, writeLab } from "../../testkit/lab-yaml";

type TfJson = { terraform: { required_providers: Record<string, { source: string; version: string }> }; resource: Record<string, Record<string, any>> };

function only(resources: Record<string, any>): any {
  const values = Object.values(resources);
  expect(values).toHaveLength(1);
  return values[0];
}

describe("`cdktf synth` of the lab", () => {
  // Every file a test here writes is under this folder, removed even when a test fails.
  let work: string;
  beforeAll(() => (work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-synth-"))));
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test("`cdktf synth` writes cdktf.out/stacks/lab/cdk.tf.json with the dmacvicar/libvirt provider", () => {
    const outdir = fs.mkdtempSync(path.join(work, "out-"));
    const configFile = writeLab(testLab({ vms: [{ name: "web", memory: 1536 }] }), outdir);
    execFileSync("npx", ["cdktf", "synth", "--output", outdir], {
      cwd: PROJECT_DIR,
      env: { ...process.env, BTW_CONFIG: configFile, TERRAFORM_BINARY_NAME: "/nonexistent-engine" },
      stdio: "pipe",
    });
    const tf: TfJson = JSON.parse(fs.readFileSync(path.join(outdir, "labs", "btwtest", "stacks", "lab", "cdk.tf.json"), "utf8"));
    expect(tf.terraform.required_providers.libvirt).toEqual({ source: "dmacvicar/libvirt", version: "0.8.3" });
    const domain = only(tf.resource.libvirt_domain);
    expect(domain).toMatchObject({ name: "btw-btwtest-web", memory: 1536, vcpu: 1, type: "qemu" });
  }, 120_000);

  test("`cdktf synth` with a bad config fails, naming the file and key, and writes no stack", () => {
    const outdir = fs.mkdtempSync(path.join(work, "out-"));
    const configFile = writeLab(testLab({ extra: { libvirt: { accel: "hvf" } } }), outdir);
    const result = spawnSync("npx", ["cdktf", "synth", "--output", outdir], {
      cwd: PROJECT_DIR,
      env: { ...process.env, BTW_CONFIG: configFile },
      encoding: "utf8",
    });
    expect(result.status).not.toBe(0);
    expect(result.stdout + result.stderr).toContain(`${configFile}: invalid lab config`);
    expect(result.stdout + result.stderr).toContain("libvirt.accel: 'hvf' is not one of 'kvm', 'tcg'");
    expect(fs.existsSync(path.join(outdir, "labs", "btwtest", "stacks", "lab", "cdk.tf.json"))).toBe(false);
  }, 120_000);
});
