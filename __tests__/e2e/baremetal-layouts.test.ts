// Root on mdadm RAID1 and on a ZFS mirror (layouts raid1 and zfs-mirror,
// docs/layouts.md), end to end on Debian's real image: a blank BIOS machine
// (profile mdadm, raid1) and a blank UEFI one (profile zfs, zfs-mirror), each
// with two disks named by id, PXE-boot their profile's deploy environment, which
// partitions both disks, builds the root array or the pools across them, restores
// the tested root file system onto them and a boot loader onto each disk. The
// restored systems reach cloud-init done with their hostnames and both members
// active; with the first disk taken out each boots again from the second,
// degraded, to cloud-init done (BIOS: the firmware goes on to the next disk; UEFI:
// the server's GRUB finds the shim on the disk that is left).
import * as fs from "fs";
import { stringify } from "yaml";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";
import { PxeLab, PxeMachine } from "../../testkit/pxe-lab";

const raid1: PxeMachine = { name: "raid-bios", mac: "52:54:00:bd:61:01", firmware: "bios", profile: "mdadm", layout: "raid1", disks: 2 };
const zfsMirror: PxeMachine = { name: "zfs-uefi", mac: "52:54:00:bd:61:02", firmware: "uefi", profile: "zfs", layout: "zfs-mirror", disks: 2 };
// BTW_LAYOUTS_ONLY=raid1 or zfs-mirror runs one layout; the other shows as a skipped test in the result.
const only = process.env.BTW_LAYOUTS_ONLY;
const layouts = [raid1, zfsMirror];
if (only && !layouts.some((machine) => machine.layout === only)) {
  throw new Error(`BTW_LAYOUTS_ONLY=${only}: not a layout of this test (${layouts.map((machine) => machine.layout).join(", ")})`);
}
const leftOut = layouts.filter((machine) => only && machine.layout !== only);
const lab = new PxeLab({
  lab: "bmdisks",
  subnet: "10.213.61",
  stateDir: "/var/lib/btw-img/pxe-test-layouts",
  machines: layouts.filter((machine) => !leftOut.includes(machine)),
});
const inGuest = (machine: PxeMachine, program: string, args: string[]) => guestExec(lab.domain(machine), program, args).stdout;
const mdstat = (machine: PxeMachine) => inGuest(machine, "/bin/cat", ["/proc/mdstat"]);
// `zpool status -P` names each member by its path: /dev/vda1, or its by-id link.
const poolStatus = (machine: PxeMachine, pool: string) => inGuest(machine, "/usr/sbin/zpool", ["status", "-P", pool]);
const isRaid1 = (machine: PxeMachine) => machine.layout === "raid1";

describe("layouts raid1 and zfs-mirror: root across two disks", () => {
  const workspace = new LabWorkspace();
  let release = () => {};

  for (const machine of leftOut) {
    test.skip(`layout ${machine.layout} (${machine.name}, profile ${machine.profile}): left out by BTW_LAYOUTS_ONLY=${only}`, () => {});
  }

  beforeAll(() => {
    release = hold("baremetal-layouts", lab.held());
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

  test("`cdktf deploy baremetal` builds the deploy environments of profiles mdadm (raid1) and zfs (zfs-mirror)", async () => {
    const run = await workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 3_600_000);
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toHaveLength(1);
  }, 3_600_000);

  test("the blank machines restore onto both disks and their systems boot from the array or the pool to cloud-init done", async () => {
    lab.startMachines(workspace.dir);
    const reports = await lab.waitForReports(1_500_000);
    expect(lab.notDone(reports)).toEqual([]);
    for (const machine of lab.machines) {
      const console = fs.readFileSync(lab.consoleLog(machine), "utf8");
      if (isRaid1(machine)) {
        expect(console).toMatch(/restore: creating \/dev\/md0 \(RAID1 of \/dev\/vda1 \/dev\/vdb1\)/);
      } else {
        expect(console).toMatch(/restore: creating bpool \(mirror \/dev\/vda2 \/dev\/vdb2\) and rpool \(mirror \/dev\/vda1 \/dev\/vdb1\)/);
        expect(console).toMatch(/restore: GRUB for UEFI onto \/dev\/vda15 \(reading bpool\)/);
      }
      expect(console).toMatch(/restore: restoring partition 15 \(esp\) with partclone\.vfat onto \/dev\/vdb15/);
      expect(console).toMatch(/restore: GRUB for BIOS onto \/dev\/vdb/);
    }
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => lab.cloudInitStatus(machine));
    for (const machine of lab.machines) {
      expect(statuses.get(machine)!.value).toContain("status: done");
      expect(inGuest(machine, "/bin/hostname", []).trim()).toBe(machine.name);
      if (isRaid1(machine)) {
        // Root is the array, and both members are in it (resyncing or not: [UU]).
        expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).trim()).toBe("/dev/md0");
        expect(mdstat(machine)).toMatch(/^md0 : active (\(auto-read-only\) )?raid1 (vd[ab]1\[[01]\] ?){2}/m);
        expect(mdstat(machine)).toMatch(/\[2\/2\] \[UU\]/);
      } else {
        // Root and /boot are the pools' datasets, each pool a mirror of both disks, all ONLINE.
        expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE,FSTYPE", "/"]).trim()).toMatch(/^rpool\/ROOT\/debian +zfs$/);
        expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE,FSTYPE", "/boot"]).trim()).toMatch(/^bpool\/BOOT\/debian +zfs$/);
        for (const [pool, partition] of [
          ["rpool", 1],
          ["bpool", 2],
        ] as const) {
          const status = poolStatus(machine, pool);
          expect(status).toMatch(/state: ONLINE/);
          expect(status).toMatch(/mirror-0 +ONLINE/);
          expect(status).toMatch(new RegExp(`(vda${partition}|${machine.name}-d1-part${partition}) +ONLINE`));
          expect(status).toMatch(new RegExp(`(vdb${partition}|${machine.name}-d2-part${partition}) +ONLINE`));
        }
        // The copy kept owners and modes (su is setuid root).
        expect(inGuest(machine, "/usr/bin/stat", ["-c", "%a %U", "/usr/bin/su"]).trim()).toBe("4755 root");
        // dkms's private signing key, made while customizing, is in no image (its public half is).
        expect(inGuest(machine, "/bin/sh", ["-c", "ls /var/lib/dkms/mok.*"]).trim()).toBe("/var/lib/dkms/mok.pub");
      }
      // The apt hook's copy: a file put on the mounted ESP reaches the other disk's ESP.
      const sync = guestExec(lab.domain(machine), "/bin/sh", [
        "-c",
        "echo btw-sync-test >/boot/efi/btw-sync-test && /usr/local/sbin/btw-esp-sync && mounted=$(findmnt -n -o PARTUUID /boot/efi | tail -n 1) && " +
          'for p in $(cat /etc/btw-img/esps); do [ "$p" = "$mounted" ] && continue; d=$(mktemp -d); mount /dev/disk/by-partuuid/$p $d && cat $d/btw-sync-test; umount $d; rmdir $d; done',
      ]);
      expect(sync).toEqual({ exitcode: 0, stdout: "btw-sync-test\n" });
    }
  }, 3_000_000);

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
      if (isRaid1(machine)) {
        expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).trim()).toBe("/dev/md0");
        // One member left: [2/1].
        expect(mdstat(machine)).toMatch(/\[2\/1\] \[(U_|_U)\]/);
      } else {
        expect(inGuest(machine, "/usr/bin/findmnt", ["-n", "-o", "SOURCE", "/"]).trim()).toBe("rpool/ROOT/debian");
        for (const pool of ["rpool", "bpool"]) {
          // The mirror runs on the disk that is left; the missing one is UNAVAIL (or FAULTED: its old name is the disk left).
          const status = poolStatus(machine, pool);
          expect(status).toMatch(/state: DEGRADED/);
          expect(status).toMatch(/ (UNAVAIL|FAULTED) /);
          expect(status.match(/ ONLINE /g)?.length ?? 0).toBeGreaterThanOrEqual(1);
        }
      }
      // The disk that is left is the second one (its serial).
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
