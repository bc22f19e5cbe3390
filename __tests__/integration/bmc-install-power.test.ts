// Deploy drives the power (lib/constructs/machine-power.ts, bin/install-power.ts,
// `btw metal reinstall`): the baremetal stack gives each machine with a BMC a
// step that, after its PXE server, sets the next boot to the network once and
// powers the machine on (or cycles it), unless the server's records hold it as
// installed; a reinstall powers it again. The synthesized steps are run as the
// engine runs them, against a real IPMI BMC simulator (ipmi_sim) and the Redfish
// stand-in (testkit/redfish-sim.ts); no machine boots.
import execa from "execa";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { parseConfig } from "../helpers/test-config";
import { synthStack } from "../helpers/synth-stack";
import { PROJECT_DIR } from "../../lib/paths";
import { BaremetalStack } from "../../stacks/baremetal-stack";
import { BmcSim } from "../../testkit/bmc-sim";
import { RedfishSim } from "../../testkit/redfish-sim";
import { testLab } from "../../testkit/lab-yaml";

const IPMI_PASSWORD = `ipmi${process.pid}`;
const REDFISH_PASSWORD = `redfish-${process.pid}-secret`;
const ENV = { BTW_TEST_IPMI_PASSWORD: IPMI_PASSWORD, BTW_TEST_REDFISH_PASSWORD: REDFISH_PASSWORD };
const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-install-power-"));
const stateDir = path.join(work, "pxe");
const records = path.join(stateDir, "btwpower.records");
let ipmi: BmcSim;
let redfish: RedfishSim;

const MACHINES = { ipmi: "52:54:00:98:01:01", redfish: "52:54:00:98:01:02", hand: "52:54:00:98:01:03" };

function labYaml(): string {
  return stringify({
    ...testLab({ name: "btwpower" }),
    baremetal: {
      pxe: { interface: "br52", address: "10.52.0.1", state_dir: stateDir },
      machines: [
        { name: "m-ipmi", mac: MACHINES.ipmi, bmc: { driver: "ipmi", address: `127.0.0.1:${ipmi.port}`, username: "admin", password_env: "BTW_TEST_IPMI_PASSWORD", cipher_suite: 3, firmware: "bios" } },
        {
          name: "m-redfish",
          mac: MACHINES.redfish,
          bmc: { driver: "redfish", address: `127.0.0.1:${redfish.port}`, username: "admin", password_env: "BTW_TEST_REDFISH_PASSWORD", ca_file: redfish.caFile, firmware: "uefi" },
        },
        { name: "m-hand", mac: MACHINES.hand },
      ],
    },
  });
}

/** The power steps of the synthesized baremetal stack, by machine name. */
function powerSteps(): { tf: any; steps: Map<string, any> } {
  const tf = synthStack((app) => new BaremetalStack(app, "baremetal", parseConfig(labYaml(), path.join(work, "lab.yaml"), { cacheDir: path.join(work, "cache") })));
  const steps = new Map<string, any>();
  for (const resource of Object.values(tf.resource.terraform_data) as any[]) {
    const exec = resource.provisioner?.[0]?.["local-exec"];
    if (exec?.command.includes("install-power.ts")) steps.set(JSON.parse(exec.environment.BTW_MACHINE).name, resource);
  }
  return { tf, steps };
}

/** Runs a power step's command as the engine's local-exec does: sh -c, its environment added to ours. */
async function runStep(step: any) {
  const exec = step.provisioner[0]["local-exec"];
  const result = await execa("sh", ["-c", exec.command], { reject: false, env: { ...ENV, ...exec.environment } });
  return { status: result.exitCode, output: `${result.stdout}${result.stderr}` };
}

/** The server's record of a machine, as its CGI writes it (in a folder marked as btw-img's). */
const record = (mac: string, value: string) => {
  fs.mkdirSync(records, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(records, ".btw-img-owned"), "");
  fs.writeFileSync(path.join(records, mac), `${value}\n`);
};

beforeAll(async () => {
  ipmi = await BmcSim.start(path.join(work, "ipmi"), IPMI_PASSWORD);
  redfish = await RedfishSim.start(path.join(work, "redfish"), "admin", REDFISH_PASSWORD, { node1: undefined });
}, 60_000);

afterAll(async () => {
  await ipmi?.stop();
  await redfish?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("deploy powers machines through their BMCs", () => {
  test("a step per machine with a BMC, after the server and replaced with it, without any password", () => {
    const { tf, steps } = powerSteps();
    expect([...steps.keys()].sort()).toEqual(["m-ipmi", "m-redfish"]);
    const server = Object.entries(tf.resource.terraform_data).find(([, r]: [string, any]) => JSON.stringify(r).includes("pxe-server.sh start")) as [string, any];
    for (const step of steps.values()) {
      expect(step.depends_on).toEqual([`terraform_data.${server[0]}`]);
      expect(step.triggers_replace.server).toBe(`\${terraform_data.${server[0]}.id}`);
    }
    const json = JSON.stringify(tf);
    expect(json).not.toContain(IPMI_PASSWORD);
    expect(json).not.toContain(REDFISH_PASSWORD);
  });

  test("blank machines: the next boot from the network once, then power on; on already: a cycle", async () => {
    const { steps } = powerSteps();
    const first = await runStep(steps.get("m-ipmi"));
    expect(first).toMatchObject({ status: 0, output: expect.stringContaining("m-ipmi: next boot from the network, once; powered on through its BMC (ipmi 127.0.0.1)") });
    expect(ipmi.actions()).toEqual(["boot pxe", "power 1"]);
    expect(await runStep(steps.get("m-redfish"))).toMatchObject({ status: 0, output: expect.stringContaining("m-redfish: next boot from the network, once; powered on") });
    expect(redfish.actions("node1")).toEqual(["boot Pxe Once UEFI", "reset On", "power on from Pxe"]);
    // Run again (a new server: a new seed or image) while they are on.
    expect(await runStep(steps.get("m-redfish"))).toMatchObject({ status: 0, output: expect.stringContaining("power cycled") });
    expect(redfish.actions("node1").slice(3)).toEqual(["boot Pxe Once UEFI", "reset PowerCycle", "power on from Pxe"]);
    expect((await runStep(steps.get("m-ipmi"))).output).toContain("power cycled");
    // ipmi_sim powers on again a second after the off of a cycle.
    for (let waited = 0; ipmi.actions().length < 5 && waited < 100; waited++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ipmi.actions().slice(2)).toEqual(["boot pxe", "power 0", "power 1"]);
  }, 120_000);

  test("installed machines (done or kept) are left as they are; a reinstall's mark powers them again", async () => {
    const { steps } = powerSteps();
    record(MACHINES.ipmi, "done");
    record(MACHINES.redfish, "kept");
    const before = { ipmi: ipmi.actions().length, redfish: redfish.actions("node1").length };
    expect(await runStep(steps.get("m-ipmi"))).toMatchObject({ status: 0, output: expect.stringContaining(`m-ipmi: installed (done in ${records}): left as it is`) });
    expect((await runStep(steps.get("m-redfish"))).output).toContain("m-redfish: installed (kept in");
    expect(ipmi.actions().length).toBe(before.ipmi);
    expect(redfish.actions("node1").length).toBe(before.redfish);
    fs.writeFileSync(path.join(records, `${MACHINES.ipmi}.replace`), "replace\n");
    expect((await runStep(steps.get("m-ipmi"))).output).toContain("m-ipmi: next boot from the network, once");
    expect(ipmi.actions()[before.ipmi]).toBe("boot pxe");
  }, 120_000);

  test("btw metal reinstall marks the machine and powers it through its BMC", async () => {
    record(MACHINES.redfish, "done");
    fs.writeFileSync(path.join(work, "lab.yaml"), labYaml());
    const before = redfish.actions("node1").length;
    const result = await execa(path.join(PROJECT_DIR, "bin", "btw"), ["metal", "reinstall", "m-redfish"], { reject: false, env: { ...ENV, BTW_CONFIG: path.join(work, "lab.yaml") } });
    expect({ status: result.exitCode, output: `${result.stdout}${result.stderr}` }).toMatchObject({ status: 0, output: expect.stringContaining("its next start will") });
    expect(`${result.stdout}${result.stderr}`).toContain("m-redfish: next boot from the network, once");
    expect(fs.existsSync(path.join(records, `${MACHINES.redfish}.replace`))).toBe(true);
    expect(redfish.actions("node1").slice(before, before + 1)).toEqual(["boot Pxe Once UEFI"]);
  }, 120_000);
});
