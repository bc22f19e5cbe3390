// A fleet driven through BMCs: two blank machines that nobody powers by hand, a
// BIOS one behind OpenIPMI's ipmi_sim and a UEFI one behind the Redfish stand-in
// (testkit/redfish-sim.ts; no vendor BMC runs here), each with its disk first in
// its boot order. `cdktf deploy baremetal` boots each from the network once
// through its BMC and follows its reports until done; both then run their
// restored systems, and a power cycle through the BMC boots the disk without
// asking the network. A machine whose link is down is power cycled, then failed
// with the reason; `btw metal release --erase quick` leaves a disk without a
// signature and the machine off.
import { execFileSync, spawnSync } from "child_process";
import execa from "execa";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/paths";
import { BmcMachines } from "../../testkit/bmc-machines";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers } from "../../testkit/libvirt";
import { PxeLab, PxeMachine, quiet } from "../../testkit/pxe-lab";

const lab = new PxeLab({
  lab: "bmfleet",
  subnet: "10.213.56",
  stateDir: "/var/lib/btw-img/pxe-test-fleet",
  machines: [
    { name: "fleet-bios", mac: "52:54:00:bd:56:01", firmware: "bios", profile: "metal" },
    { name: "fleet-uefi", mac: "52:54:00:bd:56:02", firmware: "uefi", profile: "minimal" },
  ],
});
const [BIOS, UEFI] = lab.machines;
const HTTP_PORT = 18186;

describe("a fleet powered only through its BMCs", () => {
  const workspace = new LabWorkspace();
  let bmcs: BmcMachines;
  let release = () => {};

  /** The lab config, its machines' BMCs in it; report_timeout and power_retries as given (an install needs its minutes). */
  const writeConfig = (reportTimeout = 600, powerRetries = 1) => {
    const config = lab.labConfig({ labCidr: "10.213.57.0/24", httpPort: HTTP_PORT, dhcpRange: "10.213.56.100,10.213.56.150", bmc: (machine) => bmcs.bmcKey(machine) });
    config.baremetal = { ...(config.baremetal as Record<string, unknown>), report_timeout: reportTimeout, power_retries: powerRetries };
    fs.writeFileSync(workspace.configFile, stringify(config));
  };
  // Not spawnSync: the Redfish stand-in answers from this process.
  const btw = (args: string[]) => execa(path.join(PROJECT_DIR, "bin", "btw"), args, { reject: false, env: { ...bmcs.env(), BTW_CONFIG: workspace.configFile } });
  const domstate = (machine: PxeMachine) => quiet("virsh", ["-c", "qemu:///system", "domstate", lab.domain(machine)]).stdout.trim();
  const bootId = (machine: PxeMachine) => guestExec(lab.domain(machine), "/bin/cat", ["/proc/sys/kernel/random/boot_id"]).stdout.trim();

  beforeAll(async () => {
    release = hold("baremetal-fleet", lab.held());
    lab.cleanup();
    lab.createNetwork(workspace.dir);
    bmcs = await BmcMachines.start(
      lab,
      workspace.dir,
      new Map([
        [BIOS, "ipmi"],
        [UEFI, "redfish"],
      ]),
    );
    writeConfig();
  }, 600_000);

  afterAll(async () => {
    lab.stopMachines();
    await workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000, bmcs?.env());
    await bmcs?.stop();
    lab.cleanup();
    release();
    workspace.remove();
  }, 900_000);

  test("`cdktf deploy baremetal` boots each machine from the network once through its BMC and follows it until done", async () => {
    expect(lab.machines.map(domstate)).toEqual(["shut off", "shut off"]);
    const run = await workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 3_000_000, bmcs.env());
    expect({ status: run.status, errors: run.output.split("\n").filter((line) => /Error/.test(line)) }).toEqual({ status: 0, errors: [] });
    for (const machine of lab.machines) {
      expect(lab.record(machine)).toBe("done");
      // The deploy printed the machine's progress as it went.
      expect(run.output).toContain(`${machine.name}: next boot from the network, once; powered on through its BMC`);
      expect(run.output).toMatch(new RegExp(`${machine.name}: writing \\d+ %`));
      expect(run.output).toContain(`${machine.name}: done`);
      // Powered through its BMC only, booted from the network once.
      expect(bmcs.actions(machine).slice(0, 3)).toEqual(["boot pxe", "power 1", "network boot once"]);
    }
    // The password went to neither the plan nor the state.
    const held = spawnSync("grep", ["-rlF", bmcs.env().BTW_TEST_BMC_PASSWORD, workspace.dir], { encoding: "utf8" });
    expect(held.stdout).toBe("");
  }, 3_000_000);

  test("both run their restored systems; a power cycle through the BMC boots the disk, not the network", async () => {
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    for (const machine of lab.machines) {
      expect(statuses.get(machine)!.value).toContain("status: done");
      expect(guestExec(lab.domain(machine), "/bin/hostname", []).stdout.trim()).toBe(machine.name);
    }
    const firstBoot = bootId(UEFI);
    // What the server sent the machine's firmware over TFTP (its own folder): shim, GRUB, scripts.
    const tftpSent = () =>
      fs
        .readFileSync(path.join(lab.serverDir, "dnsmasq.log"), "utf8")
        .split("\n")
        .filter((line) => line.includes(`sent ${lab.tftpFolder(UEFI)}/`)).length;
    const loads = tftpSent();
    expect(loads).toBeGreaterThan(0);
    const cycled = await btw(["metal", "power", UEFI.name, "cycle"]);
    expect({ status: cycled.exitCode, stdout: cycled.stdout }).toEqual({ status: 0, stdout: `${UEFI.name}: on` });
    await lab.waitForAll("the UEFI machine's disk boot", 900_000, (machine) => (lab.cloudInitStatus(machine) && bootId(machine) !== firstBoot ? true : undefined), [UEFI]);
    // Its firmware loaded nothing from the server: the disk comes first.
    expect(tftpSent()).toBe(loads);
    expect(bmcs.actions(UEFI).slice(-2)).toEqual(["power 0", "power 1"]);
  }, 2_400_000);

  test("a machine whose link is down is power cycled into its install again, then failed with the reason", async () => {
    // The cable out: the NIC of the network-first definition its BMC boots has no link.
    const chassis = path.join(bmcs.chassisDir(BIOS), "network-first.xml");
    const xml = fs.readFileSync(chassis, "utf8");
    fs.writeFileSync(chassis, xml.replace(`<mac address='${BIOS.mac}'/>`, `<mac address='${BIOS.mac}'/><link state='down'/>`));
    try {
      writeConfig(60, 1);
      const before = bmcs.actions(BIOS).length;
      const reinstall = await btw(["metal", "reinstall", BIOS.name]);
      const output = `${reinstall.stdout}${reinstall.stderr}`;
      expect(reinstall.exitCode).toBe(1);
      expect(output).toContain(`${BIOS.name}: no report for 60 s in state powering-on: power cycle 1 of 1`);
      expect(output).toContain(`machine ${BIOS.name}: no report for 60 s in state powering-on after 1 power cycle (baremetal.report_timeout, baremetal.power_retries)`);
      expect(
        bmcs
          .actions(BIOS)
          .slice(before)
          .filter((action) => action === "network boot once"),
      ).toHaveLength(2);
    } finally {
      fs.writeFileSync(chassis, xml);
      writeConfig();
    }
  }, 900_000);

  test("`btw metal release --erase quick` through Redfish: the disk without a signature, the machine off and not served", async () => {
    const released = await btw(["metal", "release", UEFI.name, "--erase", "quick"]);
    expect({ status: released.exitCode, output: `${released.stdout}${released.stderr}` }).toMatchObject({
      status: 0,
      output: expect.stringContaining(`${UEFI.name}: released (disks erased, quick), powered off`),
    });
    expect(domstate(UEFI)).toBe("shut off");
    expect(lab.record(UEFI)).toBe("released");
    const states = JSON.parse((await btw(["metal", "status", "--json"])).stdout);
    const uefi = states.find((machine: { name: string }) => machine.name === UEFI.name);
    expect(uefi.reports.map((report: { state: string }) => report.state)).toEqual(expect.arrayContaining(["erasing", "released"]));
    expect((await execa("curl", ["-s", `http://${lab.serverAddress}:${HTTP_PORT}/cgi-bin/boot?mac=${UEFI.mac.replace(/:/g, "-")}`])).stdout).toContain(`${UEFI.name} is released`);
    // The disk as the machine left it: no signature on it, none where its partitions were.
    const manifest = JSON.parse(fs.readFileSync(path.join(lab.serverDir, "http", "artifacts", UEFI.profile, "manifest.json"), "utf8"));
    const raw = path.join(workspace.dir, "released.raw");
    execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", lab.disk(UEFI), raw]);
    const loops: string[] = [];
    try {
      const attach = (args: string[]) => {
        const device = execFileSync("losetup", ["-f", "--show", "-r", ...args, raw], { encoding: "utf8" }).trim();
        loops.push(device);
        return device;
      };
      expect(execFileSync("wipefs", ["-n", attach([])], { encoding: "utf8" })).toBe("");
      for (const partition of manifest.partitions as { number: number; start_sector: number }[]) {
        const device = attach(["-o", String(partition.start_sector * 512), "--sizelimit", String(2 * 1024 * 1024)]);
        expect({ partition: partition.number, signatures: execFileSync("wipefs", ["-n", device], { encoding: "utf8" }) }).toEqual({ partition: partition.number, signatures: "" });
      }
    } finally {
      for (const device of loops) spawnSync("losetup", ["-d", device]);
      fs.rmSync(raw, { force: true });
    }
  }, 1_200_000);

  test("`cdktf destroy baremetal` leaves nothing", async () => {
    lab.stopMachines();
    const run = await workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000, bmcs.env());
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toEqual([]);
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
  }, 900_000);
});
