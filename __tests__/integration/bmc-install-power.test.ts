// Deploy drives the power (lib/constructs/machine-power.ts, bin/install-power.ts,
// `btw metal reinstall`): the baremetal stack gives each machine with a BMC a
// step that, after its PXE server, sets the next boot to the network once and
// powers the machine on (or cycles it), unless the server's records hold it as
// installed, then follows its reports until done: a silent machine is power
// cycled, then failed with the reason; a failed report ends it with its note. A
// reinstall powers it again. `btw metal status` and `inventory` read the records.
// The synthesized steps are run as the engine runs them, against a real IPMI BMC
// simulator (ipmi_sim) and the Redfish stand-in (testkit/redfish-sim.ts); the
// machine's reports are written into the records folder as the server's CGI
// writes them (its own tests: pxe-server-script); no machine boots.
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
      report_timeout: 4,
      power_retries: 1,
      machines: [
        {
          name: "m-ipmi",
          mac: MACHINES.ipmi,
          bmc: { driver: "ipmi", address: `127.0.0.1:${ipmi.port}`, username: "admin", password_env: "BTW_TEST_IPMI_PASSWORD", cipher_suite: 3, firmware: "bios" },
        },
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

/** A report of the machine as the CGI keeps it: its state, and a line of its log. */
const reportAs = (mac: string, state: string, percent?: number, note = "") => {
  record(mac, state);
  fs.appendFileSync(path.join(records, `${mac}.log`), `${Math.floor(Date.now() / 1000)} ${state} ${percent ?? "-"}${note ? ` ${note}` : ""}\n`);
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until CONDITION holds (at most 30 s). */
async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 100) {
    if (waited > 30_000) throw new Error("waited 30 s in vain");
    await sleep(100);
  }
}

/** The machine's install as its deploy environment reports it, once its BMC powered it: up, progress, then OUTCOME. */
async function installs(mac: string, poweredOn: () => boolean, outcome: string, note = "") {
  await until(poweredOn);
  for (const [state, percent] of [["deploy-env-up"], ["downloading", 50], ["writing", 40], ["configuring"]] as [string, number?][]) {
    reportAs(mac, state, percent);
    await sleep(700);
  }
  reportAs(mac, outcome, undefined, note);
}

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

  test("blank machines: the next boot from the network once, power on, then their reports until done or kept; on already: a cycle", async () => {
    const { steps } = powerSteps();
    const [first] = await Promise.all([runStep(steps.get("m-ipmi")), installs(MACHINES.ipmi, () => ipmi.actions().includes("power 1"), "done")]);
    expect(first).toMatchObject({ status: 0, output: expect.stringContaining("m-ipmi: next boot from the network, once; powered on through its BMC (ipmi 127.0.0.1)") });
    expect(first.output).toContain("m-ipmi: powering-on");
    expect(first.output).toContain("m-ipmi: done");
    expect(first.output).toMatch(/m-ipmi: (deploy-env-up|downloading 50 %|writing 40 %|configuring)/);
    expect(ipmi.actions()).toEqual(["boot pxe", "power 1"]);
    const redfishOn = () => redfish.actions("node1").includes("power on from Pxe");
    const [second] = await Promise.all([runStep(steps.get("m-redfish")), installs(MACHINES.redfish, redfishOn, "kept")]);
    expect(second).toMatchObject({ status: 0, output: expect.stringContaining("m-redfish: next boot from the network, once; powered on") });
    expect(second.output).toContain("m-redfish: kept");
    expect(redfish.actions("node1")).toEqual(["boot Pxe Once UEFI", "reset On", "power on from Pxe"]);
    // A machine that failed before is powered again; on already, by a cycle.
    record(MACHINES.redfish, "failed");
    const cycled = () => redfish.actions("node1").includes("reset PowerCycle");
    const [third] = await Promise.all([runStep(steps.get("m-redfish")), installs(MACHINES.redfish, cycled, "done")]);
    expect(third).toMatchObject({ status: 0, output: expect.stringContaining("power cycled") });
    expect(redfish.actions("node1").slice(3)).toEqual(["boot Pxe Once UEFI", "reset PowerCycle", "power on from Pxe"]);
  }, 120_000);

  test("a machine that reports nothing is power cycled into its install, then failed with the reason; a failed report ends it with its note", async () => {
    const { steps } = powerSteps();
    record(MACHINES.ipmi, "failed");
    const before = ipmi.actions().length;
    const silent = await runStep(steps.get("m-ipmi"));
    expect(silent.status).toBe(1);
    expect(silent.output).toContain("m-ipmi: no report for 4 s in state powering-on: power cycle 1 of 1");
    expect(silent.output).toContain(
      "machine m-ipmi: no report for 4 s in state powering-on after 1 power cycle (baremetal.report_timeout, baremetal.power_retries): check its console, network link and boot order",
    );
    // Marked failed with the reason, as btw metal status shows it.
    expect(fs.readFileSync(path.join(records, MACHINES.ipmi), "utf8").trim()).toBe("failed");
    expect(
      fs
        .readFileSync(path.join(records, `${MACHINES.ipmi}.log`), "utf8")
        .trim()
        .split("\n")
        .pop(),
    ).toMatch(/^\d+ failed - no report for 4 s in state powering-on after 1 power cycle$/);
    // Both were cycles of a machine that was on; ipmi_sim powers it on again a second after each off.
    await until(() => ipmi.actions().length >= before + 6);
    expect(ipmi.actions().slice(before)).toEqual(["boot pxe", "power 0", "power 1", "boot pxe", "power 0", "power 1"]);
    record(MACHINES.redfish, "failed");
    const [failed] = await Promise.all([runStep(steps.get("m-redfish")), installs(MACHINES.redfish, () => redfish.actions("node1").length > 6, "failed", "no disk has serial s9")]);
    expect(failed.status).toBe(1);
    expect(failed.output).toContain("machine m-redfish: its install failed: no disk has serial s9 (btw metal status)");
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
    const [marked] = await Promise.all([runStep(steps.get("m-ipmi")), installs(MACHINES.ipmi, () => ipmi.actions().length > before.ipmi + 1, "done")]);
    expect(marked.output).toContain("m-ipmi: next boot from the network, once");
    expect(ipmi.actions()[before.ipmi]).toBe("boot pxe");
  }, 120_000);

  test("btw metal reinstall marks the machine and powers it through its BMC; status and inventory read the records", async () => {
    record(MACHINES.redfish, "done");
    fs.writeFileSync(path.join(work, "lab.yaml"), labYaml());
    const before = redfish.actions("node1").length;
    const btw = (args: string[]) => execa(path.join(PROJECT_DIR, "bin", "btw"), ["metal", ...args], { reject: false, env: { ...ENV, BTW_CONFIG: path.join(work, "lab.yaml") } });
    const [result] = await Promise.all([btw(["reinstall", "m-redfish"]), installs(MACHINES.redfish, () => redfish.actions("node1").length > before + 1, "done")]);
    expect({ status: result.exitCode, output: `${result.stdout}${result.stderr}` }).toMatchObject({ status: 0, output: expect.stringContaining("its next start will") });
    expect(`${result.stdout}${result.stderr}`).toContain("m-redfish: next boot from the network, once");
    expect(`${result.stdout}${result.stderr}`).toContain("m-redfish: done");
    expect(redfish.actions("node1").slice(before, before + 1)).toEqual(["boot Pxe Once UEFI"]);
    // status: each machine's state since its first report of it, its percent, its reports.
    reportAs(MACHINES.ipmi, "writing", 10, "vda2");
    await sleep(1100);
    reportAs(MACHINES.ipmi, "writing", 60, "vda2");
    const status = JSON.parse((await btw(["status", "--json"])).stdout);
    const ipmiStatus = status.find((machine: any) => machine.name === "m-ipmi");
    expect(ipmiStatus).toMatchObject({ mac: MACHINES.ipmi, state: "writing", percent: 60 });
    expect(ipmiStatus.since).toBe(ipmiStatus.reports[ipmiStatus.reports.length - 2].at);
    expect(ipmiStatus.reports.slice(-2).map((r: any) => [r.state, r.percent, r.note])).toEqual([
      ["writing", 10, "vda2"],
      ["writing", 60, "vda2"],
    ]);
    expect(status.find((machine: any) => machine.name === "m-hand")).toMatchObject({ state: "waiting", reports: [] });
    const table = (await btw(["status"])).stdout;
    expect(table).toMatch(/^m-ipmi +52:54:00:98:01:01 +writing +60 % +\d{4}-/m);
    expect(table).toMatch(/^m-hand +52:54:00:98:01:03 +waiting +- +-$/m);
    // inventory: as the deploy environment reported it; none yet is said so.
    const inventory = {
      disks: [{ name: "/dev/vda", size_bytes: 5368709120, model: "", serial: "btw-disk-1", by_id: "/dev/disk/by-id/virtio-btw-disk-1", rotational: true }],
      nics: [{ name: "eth0", mac: MACHINES.ipmi, link: true, speed_mbps: null, driver: "virtio_net" }],
      cpus: 1,
      cpu_model: "QEMU Virtual CPU",
      memory_bytes: 1610612736,
      firmware: "uefi",
      secure_boot: true,
    };
    fs.writeFileSync(path.join(records, `${MACHINES.ipmi}.inventory.json`), JSON.stringify(inventory));
    expect(JSON.parse((await btw(["inventory", "m-ipmi", "--json"])).stdout)).toEqual(inventory);
    const text = (await btw(["inventory", "m-ipmi"])).stdout;
    expect(text).toContain("m-ipmi: 1 CPU (QEMU Virtual CPU), 1.5 GiB memory, firmware uefi, Secure Boot on");
    expect(text).toContain("/dev/vda 5.0 GiB rotational model '' serial 'btw-disk-1' (/dev/disk/by-id/virtio-btw-disk-1)");
    expect(text).toContain(`eth0 ${MACHINES.ipmi} link up driver virtio_net`);
    const none = await btw(["inventory", "m-hand"]);
    expect({ status: none.exitCode, stderr: none.stderr }).toMatchObject({ status: 1, stderr: expect.stringContaining("m-hand has reported no inventory yet") });
    expect((await btw(["status", "extra"])).exitCode).toBe(2);
  }, 180_000);

  test("btw metal release --erase powers the machine into its erase, follows it until released, then powers it off; without --erase, off at once", async () => {
    fs.writeFileSync(path.join(work, "lab.yaml"), labYaml());
    const btw = (args: string[]) => execa(path.join(PROJECT_DIR, "bin", "btw"), ["metal", ...args], { reject: false, env: { ...ENV, BTW_CONFIG: path.join(work, "lab.yaml") } });
    const before = redfish.actions("node1").length;
    const erased = async () => {
      await until(() =>
        redfish
          .actions("node1")
          .slice(before)
          .some((action) => action.startsWith("power on from Pxe")),
      );
      expect(fs.readFileSync(path.join(records, `${MACHINES.redfish}.erase`), "utf8").trim()).toBe("quick");
      reportAs(MACHINES.redfish, "erasing", 100, "/dev/vda");
      await sleep(700);
      reportAs(MACHINES.redfish, "released");
    };
    const [result] = await Promise.all([btw(["release", "m-redfish", "--erase", "quick"]), erased()]);
    const output = `${result.stdout}${result.stderr}`;
    expect({ status: result.exitCode, output }).toMatchObject({ status: 0, output: expect.stringContaining("m-redfish: released (disks erased, quick), powered off") });
    expect(output).toContain("m-redfish: released");
    expect(
      redfish
        .actions("node1")
        .slice(before)
        .filter((action) => action.startsWith("reset") || action.startsWith("boot")),
    ).toEqual(["boot Pxe Once UEFI", expect.stringMatching(/^reset (On|PowerCycle)$/), "reset ForceOff"]);
    // Without --erase: no boot, no disk written, off.
    record(MACHINES.ipmi, "done");
    const plain = await btw(["release", "m-ipmi"]);
    expect({ status: plain.exitCode, output: `${plain.stdout}${plain.stderr}` }).toMatchObject({ status: 0, output: expect.stringContaining("m-ipmi: released, powered off") });
    expect(fs.readFileSync(path.join(records, MACHINES.ipmi), "utf8").trim()).toBe("released");
    expect(ipmi.actions()[ipmi.actions().length - 1]).toBe("power 0");
    expect((await btw(["release", "m-ipmi", "--erase", "sideways"])).exitCode).toBe(2);
    // Without a BMC: marked, and the person is told to power it on; it erases at that network boot.
    const byHand = await btw(["release", "m-hand", "--erase", "quick"]);
    expect({ status: byHand.exitCode, stdout: byHand.stdout }).toMatchObject({
      status: 0,
      stdout: expect.stringContaining("m-hand: power it on (network boot): its deploy environment erases its disks"),
    });
    expect(fs.readFileSync(path.join(records, `${MACHINES.hand}.erase`), "utf8").trim()).toBe("quick");
  }, 180_000);
});
