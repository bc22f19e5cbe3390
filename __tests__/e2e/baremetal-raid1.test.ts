// Root on mdadm RAID1 (layout raid1, docs/layouts.md), end to end on Debian's
// real image: a blank BIOS machine and a blank UEFI one, each with two disks
// named by id, PXE-boot the
// deploy environment of profile mdadm (metal plus mdadm), which partitions both
// disks, creates the root array from their root partitions, restores the tested
// root file system onto it and GRUB onto each disk. The restored system reaches
// cloud-init done with its hostname and both members active; with its first
// disk taken out each boots again from the second, degraded, to cloud-init done
// (BIOS: the firmware goes on to the next disk; UEFI: the server's GRUB finds the
// shim on the disk that is left).
import * as fs from "fs";
import { stringify } from "yaml";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";
import { PxeLab, PxeMachine } from "../../testkit/pxe-lab";

const lab = new PxeLab({
  lab: "bmraid",
  subnet: "10.213.61",
  stateDir: "/var/lib/btw-img/pxe-test-raid",
  machines: [
    { name: "raid-bios", mac: "52:54:00:bd:61:01", firmware: "bios", profile: "mdadm", layout: "raid1", disks: 2 },
    { name: "raid-uefi", mac: "52:54:00:bd:61:02", firmware: "uefi", profile: "mdadm", layout: "raid1", disks: 2 },
  ],
});
const inGuest = (machine: PxeMachine, program: string, args: string[]) => guestExec(lab.domain(machine), program, args).stdout;
const mdstat = (machine: PxeMachine) => inGuest(machine, "/bin/cat", ["/proc/mdstat"]);

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

  test("the blank machines restore onto both disks and their systems boot from the array to cloud-init done", async () => {
    lab.startMachines(workspace.dir);
    const reports = await lab.waitForReports(1_200_000);
    expect(lab.notDone(reports)).toEqual([]);
    for (const machine of lab.machines) {
      const console = fs.readFileSync(lab.consoleLog(machine), "utf8");
      expect(console).toMatch(/restore-layout: creating \/dev\/md0 \(RAID1 of \/dev\/vda1 \/dev\/vdb1\)/);
      expect(console).toMatch(/restore-layout: restoring partition 15 \(esp\) with partclone\.vfat onto \/dev\/vdb15/);
      expect(console).toMatch(/restore-layout: GRUB for BIOS onto \/dev\/vdb/);
    }
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    for (const machine of lab.machines) {
      expect(statuses.get(machine)!.value).toContain("status: done");
      expect(inGuest(machine, "/bin/hostname", []).trim()).toBe(machine.name);
      // Root is the array, and both members are in it (resyncing or not: [UU]).
      expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).trim()).toBe("/dev/md0");
      expect(mdstat(machine)).toMatch(/^md0 : active (\(auto-read-only\) )?raid1 (vd[ab]1\[[01]\] ?){2}/m);
      expect(mdstat(machine)).toMatch(/\[2\/2\] \[UU\]/);
      // The apt hook's copy: a file put on the mounted ESP reaches the other disk's ESP.
      const sync = guestExec(lab.domain(machine), "/bin/sh", [
        "-c",
        'echo btw-sync-test >/boot/efi/btw-sync-test && /usr/local/sbin/btw-esp-sync && mounted=$(findmnt -n -o PARTUUID /boot/efi | tail -n 1) && ' +
          'for p in $(cat /etc/btw-img/esps); do [ "$p" = "$mounted" ] && continue; d=$(mktemp -d); mount /dev/disk/by-partuuid/$p $d && cat $d/btw-sync-test; umount $d; rmdir $d; done',
      ]);
      expect(sync).toEqual({ exitcode: 0, stdout: "btw-sync-test\n" });
    }
  }, 2_800_000);

  test("with its first disk removed each boots from the second, degraded, to cloud-init done", async () => {
    lab.stopMachines();
    for (const machine of lab.machines) {
      virsh(["detach-disk", lab.domain(machine), "vda", "--config"]);
      virsh(["start", lab.domain(machine)]);
    }
    const statuses = await lab.waitForAll("cloud-init on one disk", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    for (const machine of lab.machines) {
      expect(statuses.get(machine)!.value).toContain("status: done");
      expect(inGuest(machine, "/bin/hostname", []).trim()).toBe(machine.name);
      expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).trim()).toBe("/dev/md0");
      // One member left: [2/1], and the disk that is left is the second one (its serial).
      expect(mdstat(machine)).toMatch(/\[2\/1\] \[(U_|_U)\]/);
      const byId = inGuest(machine, "/bin/ls", ["/dev/disk/by-id"]);
      expect(byId).toContain(`virtio-${machine.name}-d2`);
      expect(byId).not.toContain(`virtio-${machine.name}-d1`);
    }
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
