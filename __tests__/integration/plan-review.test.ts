// Plan review: `npm run plan` (bin/plan.ts, lib/plan/plan-summary.ts) and the `btw`
// CLI, on labs in temporary folders with the real engine. Nothing is deployed:
// the "already built" state is recorded by applying the image steps with their
// host scripts removed, and libvirt is only read.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { App, LocalBackend } from "../../lib/cdk";
import { parseConfig, PROJECT_DIR } from "../../lib/config/config";
import { runEngine } from "../../lib/plan/engine";
import { hasChanges, PlanJson, renderPlanSummary } from "../../lib/plan/plan-summary";
import { LabStack } from "../../stacks/lab-stack";
import { testLab, writeLab } from "../../testkit/lab-yaml";
import { tempDirs } from "../helpers/temp-dirs";

// Stands for a password or token in user-data: no summary may hold it.
const SECRET = "s3cr3t-7f3a9c";
const TS_NODE = path.join(PROJECT_DIR, "node_modules", ".bin", "ts-node");
const tmpDir = tempDirs("btw-plan-");

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = PROJECT_DIR): Run {
  const result = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 300_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function planCli(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  return run(TS_NODE, ["--transpile-only", "bin/plan.ts", ...args], env);
}

/** lib/plan/engine.ts's planStack, with extra plan arguments (-target). */
function enginePlan(stackDir: string, args: string[] = []): PlanJson {
  runEngine(stackDir, ["init", "-input=false", "-no-color"]);
  runEngine(stackDir, ["plan", "-input=false", "-no-color", ...args, "-out=plan.tfplan"]);
  return JSON.parse(runEngine(stackDir, ["show", "-json", "plan.tfplan"]));
}

/** The lines of a Markdown section, up to the next heading. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`${heading}\n`);
  if (start < 0) throw new Error(`no section ${heading} in:\n${markdown}`);
  const rest = markdown.slice(start + heading.length + 1);
  const end = rest.search(/^#/m);
  return end < 0 ? rest : rest.slice(0, end);
}

describe("npm run plan writes the summary reviewers read", () => {
  test("a fresh lab: everything is to add, exit 2, and each image step will run for the first time", () => {
    const dir = tmpDir();
    const config = writeLab(testLab({ name: "btwplan1", vms: [{ name: "vm1" }, { name: "vm2" }] }), dir);
    const output = path.join(dir, "summary.md");
    const result = planCli(["--synth-dir", path.join(dir, "cdktf.out"), "--output", output], { BTW_CONFIG: config, BTW_STATE_DIR: path.join(dir, "state") });

    expect(result.stderr).toContain(`plan: summary written to ${output}`);
    expect(result.status).toBe(2);
    const summary = fs.readFileSync(output, "utf8");
    expect(result.stdout).toBe(summary);
    expect(summary).toMatch(/^# Plan summary\n\n## Stack `lab`\n/);
    const addRows = summary.split("\n").filter((line) => line.startsWith("| add | "));
    expect(summary).toContain(`**${addRows.length} to add, 0 to change, 0 to replace, 0 to destroy.**`);
    for (const resource of ["libvirt_network.network_", "libvirt_domain.vm-vm1_domain_", "libvirt_domain.vm-vm2_domain_", "terraform_data.image-minimal_customize_"]) {
      expect(addRows.some((row) => row.includes(`\`${resource}`))).toBe(true);
    }
    const steps = section(summary, "### Image steps that will re-run and why");
    expect(steps).toMatch(/- \*\*acquire the cloud image\*\* \(`terraform_data\.cloud-image_acquire_[0-9A-F]{8}`, add\):\n {2}- will run: first build\n/);
    expect(steps).toMatch(/- \*\*customize image minimal\*\* \(`terraform_data\.image-minimal_customize_[0-9A-F]{8}`, add\):\n {2}- will run: first build\n/);
    expect(steps).toMatch(/- \*\*cloud-init seed of vm vm1\*\* \(`[^`]+`, add\):\n {2}- will run: first build\n/);
    expect(steps).toMatch(/- \*\*cloud-init seed of vm vm2\*\* \(`[^`]+`, add\):\n {2}- will run: first build\n/);
    expect(steps).toMatch(/- \*\*wait for cloud-init on vm vm2\*\* \(`[^`]+`, add\):\n {2}- will run: first boot\n/);
  }, 300_000);

  test("a broken config exits 1 with the config's own message, and leaves no summary (not even an older one)", () => {
    const dir = tmpDir();
    const config = writeLab(testLab({ name: "btwplan2", extra: { libvirt: { accel: "hvf" } } }), dir);
    const output = path.join(dir, "summary.md");
    fs.writeFileSync(output, "# Plan summary\n(from an earlier run)\n");
    const result = planCli(["--synth-dir", path.join(dir, "cdktf.out"), "--output", output], { BTW_CONFIG: config });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`plan: error: cdktf synth failed: btw-img: ${config}: invalid lab config:`);
    expect(result.stderr).toContain("libvirt.accel: 'hvf' is not one of 'kvm', 'tcg'");
    expect(fs.existsSync(output)).toBe(false);
  }, 300_000);

  test("--help exits 0; an unknown option or stack exits 1 and says which", () => {
    const help = planCli(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("Exit status: 0 no changes, 2 changes pending, 1 error.");
    const option = planCli(["--frobnicate"]);
    expect(option.status).toBe(1);
    expect(option.stderr).toContain("plan: error: unknown option --frobnicate");
    const dir = tmpDir();
    const stack = planCli(["nosuchstack", "--synth-dir", path.join(dir, "cdktf.out")], { BTW_CONFIG: writeLab(testLab({ name: "btwplan3" }), dir) });
    expect(stack.status).toBe(1);
    expect(stack.stderr).toMatch(/plan: error: unknown stack nosuchstack \(the app has: .*lab/);
  }, 300_000);
});

describe("the summary explains why image steps run again (real engine plans against a recorded state)", () => {
  const dir = tmpDir();
  const statePath = path.join(dir, "state", "btwplan4.tfstate");
  const baseLab = testLab({ name: "btwplan4", vms: [{ name: "vm1" }, { name: "vm2" }] });
  const changedProfiles = path.join(dir, "profiles");
  let synthCount = 0;

  /** Synthesizes a lab against the shared state; returns its stack folder. */
  function synthLab(lab: Record<string, unknown>, profilesDir = path.join(PROJECT_DIR, "profiles")): string {
    const outdir = path.join(dir, `cdktf.out.${++synthCount}`);
    const config = parseConfig(stringify(lab), path.join(dir, "lab.yaml"), { profilesDir, cacheDir: path.join(dir, "cache") });
    const app = new App({ outdir, skipValidation: true });
    new LocalBackend(new LabStack(app, "lab", config), { path: statePath });
    app.synth();
    return path.join(outdir, "stacks", "lab");
  }

  const summaryOf = (plan: PlanJson) => renderPlanSummary([{ stack: "lab", plan }]);
  const steps = (plan: PlanJson) => section(summaryOf(plan), "### Image steps that will re-run and why");
  let builtPlan: PlanJson;
  let profileChangePlan: PlanJson;
  let urlChangePlan: PlanJson;

  beforeAll(() => {
    // Record acquire, customize and seed steps as built, without running their scripts.
    const stackDir = synthLab(baseLab);
    const tfFile = path.join(stackDir, "cdk.tf.json");
    const tf = JSON.parse(fs.readFileSync(tfFile, "utf8"));
    for (const step of Object.values<Record<string, unknown>>(tf.resource.terraform_data)) delete step.provisioner;
    fs.writeFileSync(tfFile, JSON.stringify(tf));
    const targets = Object.keys(tf.resource.terraform_data)
      .filter((name) => /^(cloud-image_acquire|image-.+_customize|vm-.+_seed)_/.test(name))
      .map((name) => `-target=terraform_data.${name}`);
    const recording = enginePlan(stackDir, targets);
    // The safety net of this trick: the apply must touch nothing but terraform_data.
    const touched = (recording.resource_changes ?? []).filter((change) => change.change.actions.join() !== "no-op");
    expect(touched.map((change) => change.type)).toEqual(touched.map(() => "terraform_data"));
    runEngine(stackDir, ["apply", "-input=false", "-no-color", "plan.tfplan"]);

    builtPlan = enginePlan(synthLab(baseLab));

    fs.cpSync(path.join(PROJECT_DIR, "profiles"), changedProfiles, { recursive: true });
    fs.appendFileSync(path.join(changedProfiles, "minimal", "install.d", "base.list"), "htop\n");
    fs.writeFileSync(path.join(changedProfiles, "minimal", "install.d", "tools.list"), "jq\n");
    const userDataLab = testLab({ name: "btwplan4", vms: [{ name: "vm1" }, { name: "vm2", user_data: { runcmd: [`echo token=${SECRET}`] } }] });
    profileChangePlan = enginePlan(synthLab(userDataLab, changedProfiles));

    urlChangePlan = enginePlan(synthLab(testLab({ name: "btwplan4", imageBaseUrl: "http://127.0.0.1:9/mirror", vms: [{ name: "vm1" }] })));
  }, 600_000);

  test("built image steps with unchanged inputs are not listed; only the first boot remains", () => {
    const text = steps(builtPlan);
    expect(text).not.toContain("acquire the cloud image");
    expect(text).not.toContain("customize image");
    expect(text).not.toContain("cloud-init seed");
    expect(text).toContain("**wait for cloud-init on vm vm1**");
  });

  test("a changed package list names the profile and its files; new user-data is counted, never shown", () => {
    const text = steps(profileChangePlan);
    expect(text).not.toContain("acquire the cloud image");
    expect(text).toMatch(
      /\*\*customize image minimal\*\* \(`[^`]+`, replace\):\n {2}- profile minimal changed: minimal\/install\.d\/base\.list \(modified\), minimal\/install\.d\/tools\.list \(added\)\n/,
    );
    expect(text).not.toContain("the cloud image is acquired again");
    expect(text).toMatch(/\*\*cloud-init seed of vm vm1\*\* \(`[^`]+`, replace\):\n {2}- the image vm vm1 boots is rebuilt\n(?! {2}- cloud-init user-data)/);
    const [, before, after] = / {2}- cloud-init user-data of vm vm2 changed: (\d+) → (\d+) lines \(runcmd\)\n/.exec(text) ?? [];
    expect(Number(after) - Number(before)).toBe(2);

    const summary = summaryOf(profileChangePlan);
    const customizeRow = summary.split("\n").find((line) => line.startsWith("| replace | `terraform_data.image-minimal_customize_"));
    expect(customizeRow).toContain('`triggers_replace.profile_files["minimal/install.d/tools.list"]` added');
    expect(customizeRow).toMatch(/`triggers_replace\.profile_files\["minimal\/install\.d\/base\.list"\]`: `[0-9a-f]{12}…` → `[0-9a-f]{12}…`/);
    // Replaced: the customize step and both seeds (each validated against the image).
    const replaced = summary.split("\n").filter((line) => line.startsWith("| replace | `terraform_data."));
    expect(replaced).toHaveLength(3);
    expect(summary).toMatch(/\*\*\d+ to add, 0 to change, 3 to replace, 0 to destroy\.\*\*/);
    expect(summary).not.toContain(SECRET);
  });

  test("a new image URL re-acquires the image, rebuilds from it; a removed VM's seed goes", () => {
    const text = steps(urlChangePlan);
    expect(text).toContain("  - image URL changed: `http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz` → `http://127.0.0.1:9/mirror/debian-13-generic-amd64.tar.xz`\n");
    expect(text).toContain("  - checksums URL changed: `http://127.0.0.1:9/images/SHA512SUMS` → `http://127.0.0.1:9/mirror/SHA512SUMS`\n");
    expect(text).toMatch(/\*\*customize image minimal\*\* \(`[^`]+`, replace\):\n {2}- the cloud image is acquired again\n(?! {2}- profile)/);
    expect(text).toMatch(/\*\*cloud-init seed of vm vm2\*\* \(`[^`]+`, destroy\):\n {2}- removed: no longer in the configuration\n/);
    expect(summaryOf(urlChangePlan)).toMatch(/\| destroy \| `terraform_data\.vm-vm2_seed_[0-9A-F]{8}` \| — \|/);
  });

  test("a stack whose resources are all unchanged renders 'No changes' and counts as no change", () => {
    const unchanged = { ...builtPlan, resource_changes: builtPlan.resource_changes?.filter((change) => change.type === "terraform_data" && change.change.actions.join() === "no-op") };
    expect(unchanged.resource_changes?.length).toBeGreaterThan(0);
    expect(summaryOf(unchanged)).toContain("**0 to add, 0 to change, 0 to replace, 0 to destroy.**\n\nNo changes: what is deployed matches the configuration.");
    expect(hasChanges([{ stack: "lab", plan: unchanged }])).toBe(false);
    expect(hasChanges([{ stack: "lab", plan: profileChangePlan }])).toBe(true);
  });
});

describe("the btw CLI", () => {
  const btw = (args: string[], env: NodeJS.ProcessEnv = {}) => run(path.join(PROJECT_DIR, "bin", "btw"), args, env, os.tmpdir());

  test("--help lists the commands; an unknown command or argument prints usage and exits 2", () => {
    const help = btw(["--help"]);
    expect(help.status).toBe(0);
    for (const command of ["up", "plan [ARGS]", "down [--purge]", "console VM", "status"]) expect(help.stdout).toContain(`  ${command} `);
    const unknown = btw(["frobnicate"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("btw: unknown command: frobnicate\nusage: btw COMMAND [ARGS]");
    expect(btw([]).status).toBe(2);
    const down = btw(["down", "--bogus"]);
    expect(down.status).toBe(2);
    expect(down.stderr).toContain("usage: btw down [--purge]");
    expect(btw(["console", "--help"]).stdout).toContain("usage: btw console VM");
  });

  test("status lists the lab's VMs by domain name; console refuses a VM the lab lacks", () => {
    const dir = tmpDir();
    // A relative BTW_CONFIG is taken from where btw was started (here: the temporary folder's parent).
    writeLab(testLab({ name: "btwplan5", vms: [{ name: "vm1" }, { name: "web" }] }), dir);
    const config = path.relative(os.tmpdir(), path.join(dir, "lab.yaml"));
    const status = btw(["status"], { BTW_CONFIG: config });
    expect(status.status).toBe(0);
    const rows = status.stdout
      .trim()
      .split("\n")
      .map((line) => line.split(/\s{2,}|\s(?=\S+$)/).map((cell) => cell.trim()));
    expect(rows[0]).toEqual(["VM", "DOMAIN", "HOST", "STATE", "ADDRESS"]);
    expect(rows.slice(1)).toEqual([
      ["vm1", "btw-btwplan5-vm1", "default", "not created", "-"],
      ["web", "btw-btwplan5-web", "default", "not created", "-"],
    ]);
    const console = btw(["console", "db"], { BTW_CONFIG: config });
    expect(console.status).toBe(1);
    expect(console.stderr).toContain("btw: lab btwplan5 has no VM 'db' (its VMs: vm1 web)");
  }, 300_000);
});
