// Root on mdadm RAID1 (layout raid1, docs/layouts.md), end to end on Debian's
// real image: a blank BIOS machine with two disks, named by id, PXE-boots the
// deploy environment of profile mdadm (metal plus mdadm), which partitions both
// disks, creates the root array from their root partitions, restores the tested
// root file system onto it and GRUB onto each disk. The restored system reaches
// cloud-init done with its hostname and both members active; with its first
// disk taken out it boots again from the second, degraded, to cloud-init done.
import * as fs from "fs";
import { stringify } from "yaml";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";
import { PxeLab } from "../../testkit/pxe-lab";

const lab = new PxeLab({
  lab: "bmraid",
  subnet: "10.213.61",
  stateDir: "/var/lib/btw-img/pxe-test-raid",
  machines: [{ name: "raid-bios", mac: "52:54:00:bd:61:01", firmware: "bios", profile: "mdadm", layout: "raid1", disks: 2 }],
});
const [MACHINE] = lab.machines;
const mdstat = () => guestExec(lab.domain(MACHINE), "/bin/cat", ["/proc/mdstat"]).stdout;

describe("layout raid1: root on an md RAID1 across two disks", () => {
  const workspace = new LabWorkspace();
  let release = () => {};

  beforeAll(() => {
    release = hold("baremetal-raid1", lab.held());
    lab.cleanup();
    fs.writeFileSync(workspace.configFile, stringify(lab.labConfig({ labCidr: "10.213.62.0/24", httpPort: 18184, dhcpRange: "10.213.61.100,10.213.61.150" })));
    lab.createNetwork(workspace.dir);
  }, 600_000);

  afterAll(async () => {
    lab.stopMachines();
    await workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    lab.cleanup();
    release();
    workspace.remove();
  }, 900_000);

  test("`cdktf deploy baremetal` builds profile mdadm's deploy environment with raid1", async () => {
    const run = await workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 3_600_000);
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toHaveLength(1);
  }, 3_600_000);

  test("the blank machine restores onto both disks and its system boots from the array to cloud-init done", async () => {
    lab.startMachines(workspace.dir);
    const reports = await lab.waitForReports(1_200_000);
    expect(lab.notDone(reports)).toEqual([]);
    const console = fs.readFileSync(lab.consoleLog(MACHINE), "utf8");
    expect(console).toMatch(/restore-layout: creating \/dev\/md0 \(RAID1 of \/dev\/vda1 \/dev\/vdb1\)/);
    expect(console).toMatch(/restore-layout: GRUB for BIOS onto \/dev\/vda/);
    expect(console).toMatch(/restore-layout: GRUB for BIOS onto \/dev\/vdb/);
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    expect(statuses.get(MACHINE)!.value).toContain("status: done");
    expect(guestExec(lab.domain(MACHINE), "/bin/hostname", []).stdout.trim()).toBe(MACHINE.name);
    // Root is the array, and both members are in it (resyncing or not: [UU]).
    expect(guestExec(lab.domain(MACHINE), "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).stdout.trim()).toBe("/dev/md0");
    expect(mdstat()).toMatch(/^md0 : active (\(auto-read-only\) )?raid1 (vd[ab]1\[[01]\] ?){2}/m);
    expect(mdstat()).toMatch(/\[2\/2\] \[UU\]/);
  }, 2_800_000);

  test("with its first disk removed it boots from the second, degraded, to cloud-init done", async () => {
    lab.stopMachines();
    virsh(["detach-disk", lab.domain(MACHINE), "vda", "--config"]);
    virsh(["start", lab.domain(MACHINE)]);
    const statuses = await lab.waitForAll("cloud-init on one disk", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    expect(statuses.get(MACHINE)!.value).toContain("status: done");
    expect(guestExec(lab.domain(MACHINE), "/bin/hostname", []).stdout.trim()).toBe(MACHINE.name);
    expect(guestExec(lab.domain(MACHINE), "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).stdout.trim()).toBe("/dev/md0");
    // One member left: [2/1], and the disk that is left is the second one (its serial).
    expect(mdstat()).toMatch(/\[2\/1\] \[(U_|_U)\]/);
    expect(guestExec(lab.domain(MACHINE), "/bin/ls", ["/dev/disk/by-id"]).stdout).toContain("virtio-raid-bios-d2");
    expect(guestExec(lab.domain(MACHINE), "/bin/ls", ["/dev/disk/by-id"]).stdout).not.toContain("virtio-raid-bios-d1");
  }, 1_800_000);

  test("`cdktf destroy baremetal` leaves nothing", async () => {
    lab.stopMachines();
    const run = await workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    expect(run.status).toBe(0);
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
  }, 900_000);
});
