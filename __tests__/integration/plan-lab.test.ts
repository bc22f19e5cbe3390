// The real engine plans labs against the real libvirtd (the provider reads it):
// nothing is deployed, no libvirt object is created.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { planChanges, synthLabToDir } from "../../testkit/engine";
import { testLab, writeLab } from "../../testkit/lab-yaml";

describe("the real engine plans the lab against the real libvirtd", () => {
  test("init installs dmacvicar/libvirt from the local mirror and plan lists the whole lab", () => {
    const { stackDir, outdir } = synthLabToDir(testLab({ name: "btwplan", vms: [{ name: "vm1" }, { name: "vm2" }] }));
    try {
      const changes = planChanges(stackDir);
      const lock = fs.readFileSync(path.join(stackDir, ".terraform.lock.hcl"), "utf8");
      expect(lock).toMatch(/provider "registry\.(terraform\.io|opentofu\.org)\/dmacvicar\/libvirt"/);
      expect(lock).toContain('version     = "0.8.3"');
      const count = (type: string) => changes.filter((c) => c.type === type).length;
      expect(changes.every((c) => c.actions.join() === "create")).toBe(true);
      expect(count("libvirt_network")).toBe(1);
      expect(count("libvirt_pool")).toBe(1);
      expect(count("libvirt_domain")).toBe(2);
      // one base volume, and a seed and an overlay per VM
      expect(count("libvirt_volume")).toBe(5);
      // host check, acquire, customize, partition capture, and per VM a seed and a readiness step
      expect(count("terraform_data")).toBe(8);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe("several labs from one checkout", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-labs-"));
  // Two lab files, as BTW_CONFIG selects them; each lab has its own state file in the one state folder.
  const labA = writeLab(testLab({ name: "btwlaba", vms: [{ name: "a1" }] }), fs.mkdtempSync(path.join(dir, "a-")));
  const labB = writeLab(testLab({ name: "btwlabb", vms: [{ name: "b1" }] }), fs.mkdtempSync(path.join(dir, "b-")));
  // The synth folder every run shares, as cdktf.out is shared in a checkout: only its location is the
  // test's (bin/plan.ts treats --synth-dir exactly as its default cdktf.out).
  const synthDir = path.join(dir, "cdktf.out");
  const stateDir = path.join(dir, "state");

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** `npm run plan` for one lab file: bin/plan.ts with the real cdktf synth and engine. */
  function plan(config: string, summary: string, state = stateDir) {
    return spawnSync(path.join(PROJECT_DIR, "node_modules", ".bin", "ts-node"), ["--transpile-only", "bin/plan.ts", "--synth-dir", synthDir, "--output", summary], {
      cwd: PROJECT_DIR,
      env: { ...process.env, BTW_CONFIG: config, BTW_STATE_DIR: state },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    });
  }

  test("`npm run plan` of lab A, lab B, then lab A again: each plans its own lab (exit 2), no 'Backend configuration changed'", () => {
    for (const [config, vm, run] of [
      [labA, "a1", 1],
      [labB, "b1", 2],
      [labA, "a1", 3],
    ] as const) {
      const summary = path.join(dir, `summary-${run}.md`);
      const result = plan(config, summary);
      expect({ run, status: result.status, stderr: result.stderr }).toEqual({ run, status: 2, stderr: expect.not.stringContaining("Backend configuration changed") });
      expect(fs.readFileSync(summary, "utf8")).toMatch(new RegExp(`\\| add \\| \`libvirt_domain\\.vm-${vm}_domain_`));
    }
    // Nothing was deployed: planning writes no state.
    expect(fs.existsSync(stateDir) ? fs.readdirSync(stateDir) : []).toEqual([]);
  }, 900_000);

  test("lab A planned again with another BTW_STATE_DIR plans against that state (exit 2), no 'Backend configuration changed'", () => {
    // Lab A's folder was initialized against stateDir by the test above (or is initialized here first).
    expect(plan(labA, path.join(dir, "summary-state-1.md")).status).toBe(2);
    const otherState = path.join(dir, "other-state");
    fs.mkdirSync(otherState);
    const result = plan(labA, path.join(dir, "summary-state-2.md"), otherState);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 2, stderr: expect.not.stringContaining("Backend configuration changed") });
    const record = JSON.parse(fs.readFileSync(path.join(synthDir, "labs", "btwlaba", "stacks", "lab", ".terraform", "terraform.tfstate"), "utf8"));
    expect(record.backend.config.path).toBe(path.join(otherState, "btwlaba.tfstate"));
  }, 600_000);

  test("`cdktf diff lab` on one output folder after switching the lab file: A, B, A each diff their own lab", async () => {
    // The path `cdktf deploy lab` takes: the CLI reads <outdir>/manifest.json and runs the engine where it says.
    const workspace = new LabWorkspace();
    try {
      for (const [name, vm] of [
        ["btwlaba", "a1"],
        ["btwlabb", "b1"],
        ["btwlaba", "a1"],
      ]) {
        writeLab(testLab({ name, vms: [{ name: vm }] }), workspace.dir);
        const diff = await workspace.cdktf(["diff", "lab", "--skip-provider-lock"], 600_000);
        expect({ name, status: diff.status, output: diff.output }).toEqual({
          name,
          status: 0,
          output: expect.stringContaining(`"btw-${name}-${vm}"`),
        });
        expect(diff.output).not.toContain("Backend configuration changed");
        // testLab's SHA512SUMS cannot be read (127.0.0.1:9): a diff goes on, with the warning.
        expect(diff.output).toContain("btw-img: warning: cannot read http://127.0.0.1:9/images/SHA512SUMS");
        expect(workspace.stackDir()).toBe(path.join(workspace.outdir, "labs", name, "stacks", "lab"));
      }
    } finally {
      workspace.remove();
    }
  }, 1_800_000);
});

describe("a host that cannot read SHA512SUMS (offline) and has acquired nothing before", () => {
  test("`cdktf deploy lab` stops at synth naming the URL and the network's error, before any step runs (`cdktf diff lab` goes on: below)", async () => {
    const workspace = new LabWorkspace();
    try {
      // testLab's image is served from 127.0.0.1:9, where nothing listens; the test's own cache has no image.
      writeLab(testLab({ name: "btwoffline", vms: [{ name: "vm1" }] }), workspace.dir);
      const env = { BTW_CACHE_DIR: path.join(workspace.dir, "cache") };
      const deploy = await workspace.deployStack("lab", 600_000, env);
      expect(deploy.status).not.toBe(0);
      expect(deploy.output).toMatch(/btw-img: cannot read http:\/\/127\.0\.0\.1:9\/images\/SHA512SUMS \(curl: \(7\) [^)]*\), so the image's sha512 is unknown/);
      expect(deploy.output).toContain("a deploy needs it (images are only accepted verified). Check this host's network or proxy, or image.checksums; nothing was changed");
      // Stopped before the engine ran: no step, no state.
      expect(deploy.output).not.toMatch(/terraform_data|Initializing|prepare-cloud-img/);
      expect(fs.existsSync(path.join(workspace.dir, "state")) ? fs.readdirSync(path.join(workspace.dir, "state")) : []).toEqual([]);
    } finally {
      workspace.remove();
    }
  }, 1_200_000);
});

describe("two engine inits at once, as two labs deployed together run them", () => {
  // The engine's plugin cache is not safe for concurrent inits (one init rewrote the
  // cached provider while the other lab's provider ran from it): each stack must link
  // the provider from the read-only mirror, and init must write nothing shared.
  test("both succeed, and each stack's provider is a link into the provider mirror", async () => {
    const labs = ["btwinita", "btwinitb"].map((name) => synthLabToDir(testLab({ name, vms: [{ name: "vm1" }] })));
    const engine = process.env.TERRAFORM_BINARY_NAME as string;
    const registry = path.basename(engine) === "tofu" ? "registry.opentofu.org" : "registry.terraform.io";
    const mirrored = path.join(process.env.BTW_CACHE_DIR as string, "provider-mirror", registry, "dmacvicar", "libvirt", "0.8.3", "linux_amd64");
    const binary = path.join(mirrored, "terraform-provider-libvirt_v0.8.3");
    const builtAt = fs.statSync(binary).mtimeMs;
    const init = (stackDir: string) =>
      new Promise<{ status: number | null; output: string }>((resolve) => {
        const child = spawn(engine, ["init", "-input=false", "-no-color"], { cwd: stackDir, env: { ...process.env, TF_IN_AUTOMATION: "1" } });
        let output = "";
        child.stdout.on("data", (d: Buffer) => (output += d.toString()));
        child.stderr.on("data", (d: Buffer) => (output += d.toString()));
        child.on("close", (status) => resolve({ status, output }));
      });
    try {
      for (let round = 1; round <= 3; round++) {
        const runs = await Promise.all(labs.map((lab) => init(lab.stackDir)));
        runs.forEach((run) => expect({ round, status: run.status, output: run.status === 0 ? "" : run.output }).toEqual({ round, status: 0, output: "" }));
      }
      for (const lab of labs) {
        const installed = path.join(lab.stackDir, ".terraform", "providers", registry, "dmacvicar", "libvirt", "0.8.3", "linux_amd64");
        // The link itself, not only where it ends: through a shared cache link it would end there too.
        expect(fs.readlinkSync(installed)).toBe(mirrored);
      }
      expect(fs.statSync(binary).mtimeMs).toBe(builtAt);
    } finally {
      for (const lab of labs) fs.rmSync(lab.outdir, { recursive: true, force: true });
    }
  }, 600_000);
});
