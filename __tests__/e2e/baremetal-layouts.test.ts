// Root on mdadm RAID1 and on a ZFS mirror (layouts raid1 and zfs-mirror,
// docs/layouts.md), end to end on Debian's real image, on a fleet that only BMCs
// power: a blank BIOS machine (profile mdadm, raid1) behind OpenIPMI's ipmi_sim and
// a blank UEFI one (profile zfs, zfs-mirror) behind the Redfish stand-in
// (testkit/redfish-sim.ts; no vendor BMC runs here), each with two disks named by id
// and its disks first in its boot order. `cdktf deploy baremetal` boots each from
// the network once through its BMC and follows its reports until done; the deploy
// environment partitions both disks, builds the root array or the pools across
// them, restores the tested root file system onto them and a boot loader onto each
// disk. The restored systems reach cloud-init done with their hostnames and both
// members active. A machine whose link is down is power cycled, then failed with
// the reason. Powered off through their BMCs, their first disks taken out and
// powered on again, each boots its second disk, degraded, to cloud-init done,
// asking the server nothing. `btw metal release --erase quick` leaves both disks of
// the ZFS machine without a signature and the machine off.
import { execFileSync, spawnSync } from "child_process";
import execa from "execa";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/paths";
import { BmcMachines } from "../../testkit/bmc-machines";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";
import { PxeLab, PxeMachine, quiet } from "../../testkit/pxe-lab";
import { PxeLabUnderTest } from "../../testkit/pxe-lab-test";

const raid1: PxeMachine = { name: "raid-bios", mac: "52:54:00:bd:61:01", firmware: "bios", profile: "mdadm", layout: "raid1", disks: 2 };
const zfsMirror: PxeMachine = { name: "zfs-uefi", mac: "52:54:00:bd:61:02", firmware: "uefi", profile: "zfs", layout: "zfs-mirror", disks: 2 };
const lab = new PxeLab({ lab: "bmdisks", subnet: "10.213.61", stateDir: "/var/lib/btw-img/pxe-test-layouts", machines: [raid1, zfsMirror] });
const HTTP_PORT = 18184;
const inGuest = (machine: PxeMachine, program: string, args: string[]) => guestExec(lab.domain(machine), program, args).stdout;
const mdstat = (machine: PxeMachine) => inGuest(machine, "/bin/cat", ["/proc/mdstat"]);
// `zpool status -P` names each member by its path: /dev/vda1, or its by-id link.
const poolStatus = (machine: PxeMachine, pool: string) => inGuest(machine, "/usr/sbin/zpool", ["status", "-P", pool]);
const isRaid1 = (machine: PxeMachine) => machine.layout === "raid1";
const domstate = (machine: PxeMachine) => quiet("virsh", ["-c", "qemu:///system", "domstate", lab.domain(machine)]).stdout.trim();

describe("layouts raid1 and zfs-mirror: root across two disks, on machines only their BMCs power", () => {
  const underTest = new PxeLabUnderTest(lab, "baremetal-layouts");
  const { workspace } = underTest;
  let bmcs: BmcMachines;
  /** Where each partition of each of the ZFS machine's disks starts (bytes), read in the running system. */
  const partitionStarts: { disk: number; offset: number }[] = [];

  /** The lab config, the machines' BMCs in it; report_timeout and power_retries as given (an install needs its minutes). */
  const writeConfig = (reportTimeout = 900, powerRetries = 1) => {
    const config = lab.labConfig({ labCidr: "10.213.62.0/24", httpPort: HTTP_PORT, dhcpRange: "10.213.61.100,10.213.61.150", bmc: (machine) => bmcs.bmcKey(machine) });
    config.baremetal = { ...(config.baremetal as Record<string, unknown>), report_timeout: reportTimeout, power_retries: powerRetries };
    fs.writeFileSync(workspace.configFile, stringify(config));
  };
  // Not spawnSync: the Redfish stand-in answers from this process.
  const btw = (args: string[]) => execa(path.join(PROJECT_DIR, "bin", "btw"), args, { reject: false, env: { ...bmcs.env(), BTW_CONFIG: workspace.configFile } });
  const power = async (machine: PxeMachine, action: "on" | "off") => {
    const run = await btw(["metal", "power", machine.name, action]);
    expect({ machine: machine.name, status: run.exitCode, stdout: run.stdout, stderr: run.exitCode === 0 ? "" : run.stderr }).toEqual({
      machine: machine.name,
      status: 0,
      stdout: `${machine.name}: ${action}`,
      stderr: "",
    });
  };

  beforeAll(async () => {
    await underTest.start(
      new Map([
        [raid1, "ipmi"],
        [zfsMirror, "redfish"],
      ]),
    );
    bmcs = underTest.bmcs!;
    writeConfig();
  }, 600_000);

  afterAll(() => underTest.stop(), 900_000);

  test("`cdktf deploy baremetal` builds the deploy environments of mdadm and zfs, boots each machine from the network once through its BMC and follows it until done", async () => {
    expect(lab.machines.map(domstate)).toEqual(["shut off", "shut off"]);
    const run = await underTest.deploy(3_600_000);
    expect({ status: run.status, errors: run.output.split("\n").filter((line) => /Error/.test(line)) }).toEqual({ status: 0, errors: [] });
    expect(lab.dnsmasqPids()).toHaveLength(1);
    for (const machine of lab.machines) {
      expect({ machine: machine.name, record: lab.record(machine) }).toEqual({ machine: machine.name, record: "done" });
      // The deploy printed each machine's progress as it went.
      expect(run.output).toContain(`${machine.name}: next boot from the network, once; powered on through its BMC`);
      expect(run.output).toMatch(new RegExp(`${machine.name}: writing \\d+ %`));
      expect(run.output).toContain(`${machine.name}: done`);
      // Powered through its BMC only, booted from the network once.
      expect(bmcs.actions(machine).slice(0, 3)).toEqual(["boot pxe", "power 1", "network boot once"]);
    }
    // The BMCs' password went to neither the plan nor the state.
    expect(spawnSync("grep", ["-rlF", bmcs.env().BTW_TEST_BMC_PASSWORD, workspace.dir], { encoding: "utf8" }).stdout).toBe("");
  }, 3_600_000);

  test("the machines restored onto both disks; their systems boot from the array or the pool to cloud-init done", async () => {
    for (const machine of lab.machines) {
      const console = fs.readFileSync(lab.consoleLog(machine), "utf8");
      if (isRaid1(machine)) {
        expect(console).toMatch(/restore: creating \/dev\/md0 \(RAID1 of \/dev\/vda1 \/dev\/vdb1\)/);
        // What the capture prepared: GRUB's BIOS boot partition that reads the array, on each disk;
        // the image's initramfs with the array's line; nothing of GRUB or the initramfs made here.
        expect(console).toMatch(/restore: restoring partition 14 \(bios-boot\) from p14\.raw\.mdraid\.pcl\.zst with partclone\.dd onto \/dev\/vdb14/);
        expect(console).toMatch(/restore: added etc\/mdadm\/mdadm\.conf to \/boot\/initrd\.img-/);
        expect(console).not.toMatch(/update-initramfs|update-grub|GRUB for BIOS/);
      } else {
        expect(console).toMatch(/restore: creating bpool \(mirror \/dev\/vda2 \/dev\/vdb2\) and rpool \(mirror \/dev\/vda1 \/dev\/vdb1\)/);
        // The capture's root tar, unpacked once (no partclone image of root downloaded or written).
        expect(console).toMatch(/restore: unpacking the root file system's files into rpool\/ROOT\/debian and bpool\/BOOT\/debian/);
        expect(console).not.toMatch(/downloading p1\.ext4\.pcl\.zst/);
        // The image's initramfs with this machine's host ID, not one made here.
        expect(console).toMatch(/restore: added etc\/hostid to \/boot\/initrd\.img-/);
        expect(console).not.toMatch(/update-initramfs/);
        expect(console).toMatch(/restore: GRUB for BIOS onto \/dev\/vdb/);
        expect(console).toMatch(/restore: GRUB for UEFI onto \/dev\/vda15 \(reading bpool\)/);
      }
      expect(console).toMatch(/restore: restoring partition 15 \(esp\) from p15\.vfat\.pcl\.zst with partclone\.vfat onto \/dev\/vdb15/);
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
        // rpool was imported (by the initramfs) under the machine's own host ID, /etc/hostid's.
        const hostid = inGuest(machine, "/usr/bin/hostid", []).trim();
        const imported = inGuest(machine, "/bin/sh", ["-c", "zdb -l /dev/vda1 | awk '$1 == \"hostid:\" { print $2; exit }'"]).trim();
        expect({ hostid, imported: Number(imported).toString(16).padStart(8, "0") }).toEqual({ hostid, imported: hostid });
        // dkms's private signing key, made while customizing, is in no image (its public half is).
        expect(inGuest(machine, "/bin/sh", ["-c", "ls /var/lib/dkms/mok.*"]).trim()).toBe("/var/lib/dkms/mok.pub");
        // Where its partitions start, for the release below (the erase leaves no table to read).
        for (const [disk, name] of ["vda", "vdb"].entries()) {
          const starts = inGuest(machine, "/bin/sh", ["-c", `cat /sys/class/block/${name}/${name}*/start`])
            .split("\n")
            .filter(Boolean);
          expect(starts.length).toBeGreaterThanOrEqual(4);
          for (const start of starts) partitionStarts.push({ disk, offset: Number(start) * 512 });
        }
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

  test("a machine whose link is down is power cycled into its reinstall again, then failed with the reason", async () => {
    // The cable out: the NIC of the network-first definition its BMC boots has no link.
    const chassis = path.join(bmcs.chassisDir(raid1), "network-first.xml");
    const xml = fs.readFileSync(chassis, "utf8");
    fs.writeFileSync(chassis, xml.replace(`<mac address='${raid1.mac}'/>`, `<mac address='${raid1.mac}'/><link state='down'/>`));
    try {
      // No report ever comes: a short wait is enough.
      writeConfig(20, 1);
      const before = bmcs.actions(raid1).length;
      const reinstall = await btw(["metal", "reinstall", raid1.name]);
      const output = `${reinstall.stdout}${reinstall.stderr}`;
      expect(reinstall.exitCode).toBe(1);
      expect(output).toContain(`${raid1.name}: no report for 20 s in state powering-on: power cycle 1 of 1`);
      expect(output).toContain(`machine ${raid1.name}: no report for 20 s in state powering-on after 1 power cycle (baremetal.report_timeout, baremetal.power_retries)`);
      expect(lab.record(raid1)).toBe("failed");
      expect(
        bmcs
          .actions(raid1)
          .slice(before)
          .filter((action) => action === "network boot once"),
      ).toHaveLength(2);
    } finally {
      fs.writeFileSync(chassis, xml);
      writeConfig();
    }
  }, 900_000);

  test("powered off and on through their BMCs with the first disk taken out, each boots its second, degraded, to cloud-init done, asking the server nothing", async () => {
    const definitions = new Map<PxeMachine, Map<string, string>>();
    // What the machines' firmware got from the server: the BIOS one's iPXE its boot script (the CGI's log line), the
    // UEFI one (handed back by iPXE to its firmware's PXE: shim and GRUB) files from its TFTP folder.
    const read = (file: string) => fs.readFileSync(path.join(lab.serverDir, file), "utf8");
    const bootRequests = () => [read("httpd.log").split(`btw-img: boot ${raid1.mac}:`).length - 1, read("dnsmasq.log").split(`sent ${lab.tftpFolder(zfsMirror)}/`).length - 1];
    const bootsBefore = bootRequests();
    expect(bootsBefore.every((count) => count > 0)).toBe(true);
    for (const machine of lab.machines) {
      await power(machine, "off");
      // The first disk out of the machine and of what its BMC defines it with.
      const dir = bmcs.chassisDir(machine);
      const saved = new Map(["defined.xml", "network-first.xml"].map((file) => [file, fs.readFileSync(path.join(dir, file), "utf8")]));
      definitions.set(machine, saved);
      for (const [file, xml] of saved) fs.writeFileSync(path.join(dir, file), xml.replace(/<disk [^\n]*<target dev='vda'[^\n]*<\/disk>/, ""));
      virsh(["define", path.join(dir, "defined.xml")]);
      expect(virsh(["dumpxml", lab.domain(machine)])).not.toContain("dev='vda'");
      await power(machine, "on");
    }
    try {
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
        // Disk first: its BMC set no network boot.
        expect(bmcs.actions(machine).slice(-2)).toEqual(["power 0", "power 1"]);
      }
      // Neither firmware asked the server for a boot script.
      expect(bootRequests()).toEqual(bootsBefore);
    } finally {
      // Both disks back, for the release.
      for (const [machine, saved] of definitions) {
        if (domstate(machine) !== "shut off") await power(machine, "off");
        for (const [file, xml] of saved) fs.writeFileSync(path.join(bmcs.chassisDir(machine), file), xml);
        virsh(["define", path.join(bmcs.chassisDir(machine), "defined.xml")]);
      }
    }
  }, 1_800_000);

  test("`btw metal release --erase quick` through Redfish: no signature on either disk, none where a partition was; the machine off and not served", async () => {
    const released = await btw(["metal", "release", zfsMirror.name, "--erase", "quick"]);
    expect({ status: released.exitCode, output: `${released.stdout}${released.stderr}` }).toMatchObject({
      status: 0,
      output: expect.stringContaining(`${zfsMirror.name}: released (disks erased, quick), powered off`),
    });
    expect(domstate(zfsMirror)).toBe("shut off");
    expect(lab.record(zfsMirror)).toBe("released");
    const states = JSON.parse((await btw(["metal", "status", "--json"])).stdout);
    const reports = states.find((machine: { name: string }) => machine.name === zfsMirror.name).reports.map((report: { state: string }) => report.state);
    expect(reports).toEqual(expect.arrayContaining(["erasing", "released"]));
    expect((await execa("curl", ["-s", `http://${lab.serverAddress}:${HTTP_PORT}/cgi-bin/boot?mac=${zfsMirror.mac.replace(/:/g, "-")}`])).stdout).toContain(`${zfsMirror.name} is released`);
    // The disks as the machine left them: no table, md superblock or ZFS label, on them or where a partition was.
    expect(partitionStarts.length).toBeGreaterThanOrEqual(8);
    const loops: string[] = [];
    const raws = lab.disks(zfsMirror).map((disk, i) => path.join(workspace.dir, `released-${i}.raw`));
    try {
      lab.disks(zfsMirror).forEach((disk, i) => execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", disk, raws[i]]));
      const attach = (raw: string, args: string[]) => {
        const device = execFileSync("losetup", ["-f", "--show", "-r", ...args, raw], { encoding: "utf8" }).trim();
        loops.push(device);
        return device;
      };
      for (const raw of raws) expect({ raw, signatures: execFileSync("wipefs", ["-n", attach(raw, [])], { encoding: "utf8" }) }).toEqual({ raw, signatures: "" });
      for (const { disk, offset } of partitionStarts) {
        const device = attach(raws[disk], ["-o", String(offset), "--sizelimit", String(2 * 1024 * 1024)]);
        expect({ disk, offset, signatures: execFileSync("wipefs", ["-n", device], { encoding: "utf8" }) }).toEqual({ disk, offset, signatures: "" });
      }
    } finally {
      for (const device of loops) spawnSync("losetup", ["-d", device]);
      for (const raw of raws) fs.rmSync(raw, { force: true });
    }
  }, 1_200_000);

  test("`cdktf destroy baremetal` leaves nothing", async () => {
    lab.stopMachines();
    const run = await underTest.destroy();
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toEqual([]);
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
  }, 900_000);
});
