// Config text goes into cdk.tf.json, which the engine reads as templates: it must
// arrive byte for byte (lib/terraform-string.ts), checked here with the real engine.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { App, LocalBackend } from "../../lib/cdk";
import { LabConfig, parseConfig } from "../../lib/config/config";
import { planStack, runEngine } from "../../lib/plan/engine";
import { SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { cloudConfigShape, renderSeed, seedTextSha256 } from "../../lib/config/seed";
import { BaremetalStack } from "../../stacks/baremetal-stack";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

// An interpolation, a directive and an escaped interpolation, as a shell user writes them.
const RUNCMD = "echo ${HOME} %{x} $${y}";
// What an expression's quoted string must escape: quotes, backslashes, a tab.
const QUOTED = 'printf "%s\\t%s\\n" "a\\"b" \'c\'\t';
const USER_DATA = { runcmd: [RUNCMD, QUOTED], write_files: [{ path: "/etc/motd", content: "%{ if true }${path.cwd}%{ endif }\n" }] };
const tmpDirs: string[] = [];

afterAll(() => tmpDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

type Stack = typeof LabStack | typeof BaremetalStack;

interface Synthesized {
  config: LabConfig;
  stackDir: string;
  tf: any;
}

/** Synthesizes one stack of a lab into a temporary folder. */
function synth(stackClass: Stack, lab: Record<string, unknown>, cacheDir?: string): Synthesized {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-literal-"));
  tmpDirs.push(dir);
  const config = parseConfig(stringify(lab), path.join(dir, "lab.yaml"), { cacheDir: cacheDir ?? path.join(dir, "cache") });
  const app = new App({ outdir: path.join(dir, "out"), skipValidation: true });
  new LocalBackend(new stackClass(app, "stack", config), { path: path.join(dir, "stack.tfstate") });
  app.synth();
  const stackDir = path.join(dir, "out", "stacks", "stack");
  return { config, stackDir, tf: JSON.parse(fs.readFileSync(path.join(stackDir, "cdk.tf.json"), "utf8")) };
}

interface StepRun {
  args: string[];
  env: Record<string, string>;
}

/**
 * Runs a synthesized host step's local-exec, command and environment exactly as
 * synthesized, alone with the real engine, its script swapped for one that
 * records the arguments and environment it gets.
 */
function runHostStep({ tf }: Synthesized, namePrefix: string, script: string): StepRun {
  const [, step] = Object.entries<any>(tf.resource.terraform_data).find(([name]) => name.startsWith(namePrefix))!;
  const exec = step.provisioner[0]["local-exec"];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-step-"));
  tmpDirs.push(dir);
  const recorder = path.join(dir, "record.sh");
  fs.writeFileSync(recorder, `printf '%s\\0' "$@" > ${dir}/args\nenv -0 > ${dir}/env\n`);
  const command = exec.command.replace(`sh ${path.join(SCRIPTS_DIR, script)} `, `sh ${recorder} `);
  expect(command).not.toBe(exec.command);
  const probe = { resource: { terraform_data: { probe: { provisioner: [{ "local-exec": { command, environment: exec.environment } }] } } } };
  fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(probe));
  runEngine(dir, ["init", "-input=false", "-no-color"]);
  runEngine(dir, ["apply", "-input=false", "-no-color", "-auto-approve"]);
  const nulSeparated = (file: string) => fs.readFileSync(path.join(dir, file), "utf8").split("\0").slice(0, -1);
  const env = Object.fromEntries(nulSeparated("env").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  return { args: nulSeparated("args"), env };
}

describe("the engine reads config text as it was written", () => {
  const vmLab = testLab({
    name: "btwliteral",
    vms: [{ name: "web", user_data: USER_DATA }],
    extra: { users: [{ name: "admin", ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtwImgTest admin@${HOST}"] }] },
  });

  test("a VM's user-data: the planned triggers of its seed step", () => {
    const lab = synth(LabStack, vmLab);
    const seed = renderSeed(lab.config, lab.config.vms[0]);
    expect(seed.userData).toContain(RUNCMD);
    expect(seed.userData).toContain("admin@${HOST}");
    const plan = planStack(lab.stackDir);
    const change = plan.resource_changes!.find((c) => /^terraform_data\.vm-web_seed_/.test(c.address))!;
    const triggers = (change.change.after as any).triggers_replace;
    expect(triggers).toMatchObject({ user_data_sha256: seedTextSha256(seed.userData), meta_data: seed.metaData, network_config: seed.networkConfig });
    expect(triggers.user_data_keys).toEqual(cloudConfigShape(seed.userData));
    expect(seed.userData).toMatch(/\\"/);
    // State and plans keep no user-data text (it may hold secrets): its hash and its keys' sizes.
    expect(JSON.stringify(triggers)).not.toContain("HOME");
    const shown = runEngine(lab.stackDir, ["show", "-no-color", "plan.tfplan"]);
    expect(shown).toMatch(/user_data_sha256\s+= "[0-9a-f]{64}"/);
    expect(shown).not.toContain("HOME");
  }, 300_000);

  test("a VM's user-data: what the seed step's script receives", () => {
    const lab = synth(LabStack, vmLab);
    const seed = renderSeed(lab.config, lab.config.vms[0]);
    const run = runHostStep(lab, "vm-web_seed_", "make-seed-iso.sh");
    expect(run.env).toMatchObject({ USER_DATA: seed.userData, META_DATA: seed.metaData, NETWORK_CONFIG: seed.networkConfig });
    expect(run.args.slice(0, 2)).toEqual(["--name", "web"]);
  }, 300_000);

  test("a bare-metal machine's user-data: what the PXE server's script receives", () => {
    const baremetal = synth(
      BaremetalStack,
      testLab({
        name: "btwliteral",
        extra: {
          baremetal: {
            pxe: { interface: "br50", address: "10.50.0.1" },
            machines: [{ name: "metal1", mac: "52:54:00:00:00:01", user_data: USER_DATA }],
          },
        },
      }),
    );
    const machines = JSON.parse(runHostStep(baremetal, "pxe_server_", "pxe-server.sh").env.PXE_MACHINES);
    expect(machines[0].user_data).toBe(renderSeed(baremetal.config, baremetal.config.baremetal.machines[0]).userData);
    expect(machines[0].user_data).toContain(RUNCMD);
  }, 300_000);
});
