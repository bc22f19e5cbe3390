// Bare metal end to end: `cdktf deploy baremetal` starts our PXE server on an
// isolated libvirt network; two blank machines, one UEFI with Secure Boot
// enforced and Microsoft's keys, as PCs ship (profile minimal, its disk named by
// id; it boots Debian's signed shim, GRUB and kernel) and one BIOS (profile metal:
// generic kernel, iPXE), both with boot order network then disk, PXE-boot at the
// same time, restore their profile's captured image and report done; the UEFI
// machine's first boot goes straight to its disk (BootNext), and at its next
// network boot GRUB chainloads the disk at once; iPXE answers the BIOS one
// "exit 1", so its firmware goes on to the disk; there cloud-init finishes with
// the hostname configured for the machine's MAC. The BIOS machine's first boot is a
// kexec from its deploy environment (first_boot's default), the Secure Boot one's a
// reboot through its firmware (no kexec under Secure Boot): neither asks the network.
// A seed is served only under its machine's token and only until done. Then the BIOS machine (wipe: true), with a
// file written on it, gets a new user_data, and the server is redeployed without its records (as after a rebuilt
// host or a new state folder): rebooted, its deploy environment finds another btw-img install on the disk, keeps
// it, reports "kept" and boots it with the file; `btw metal reinstall` replaces it, exactly once.
// (`btw metal release --erase quick`: baremetal-layouts.test.ts, through a BMC.)
// `cdktf destroy baremetal` leaves nothing.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { layoutTable } from "../../lib/config/layout";
import { guestExec, hostLeftovers, leftovers } from "../../testkit/libvirt";
import { PxeLab, PxeMachine, quiet } from "../../testkit/pxe-lab";
import { PxeLabUnderTest } from "../../testkit/pxe-lab-test";

const lab = new PxeLab({
  lab: "bmpxe",
  subnet: "10.213.50",
  stateDir: "/var/lib/btw-img/pxe-test",
  machines: [
    // Its disk has a serial: the config names it /dev/disk/by-id/virtio-btw-uefi-disk.
    { name: "metal-uefi", mac: "52:54:00:bd:50:01", firmware: "uefi-secure", profile: "minimal", diskSerial: "btw-uefi-disk" },
    // metal: Debian's generic kernel, in the deploy environment and the restored system.
    // wipe: it may overwrite data, but never a btw-img install that no reinstall asked to replace.
    { name: "metal-bios", mac: "52:54:00:bd:50:02", firmware: "bios", profile: "metal", wipe: true },
  ],
});
const SERVER = lab.serverAddress;
const BASE = `http://${SERVER}:18181`;
const [, BIOS] = lab.machines;
// In every machine's user_data: what must never be readable by others on the host.
const SECRET = `btw-secret-${crypto.randomBytes(8).toString("hex")}`;

/** The lab config, with user_data version 2 for the machines named (and another state_dir, or other machines). */
const labConfig = (version2: PxeMachine[] = [], other: { stateDir?: string; machines?: PxeMachine[] } = {}) =>
  lab.labConfig({
    labCidr: "10.213.51.0/24",
    httpPort: 18181,
    dhcpRange: "10.213.50.100,10.213.50.150",
    userData: (machine) => ({ runcmd: [`echo btw-runcmd-${machine.name}-${version2.includes(machine) ? 2 : 1} > /run/btw-runcmd`, `true ${SECRET}`] }),
    ...other,
  });

/** GET from the host itself (an address that is no machine's). */
function get(url: string): { code: number; body: string } {
  const lines = execFileSync("curl", ["-s", "-w", "\n%{http_code}", url], { encoding: "utf8" }).split("\n");
  return { code: Number(lines.pop()), body: lines.join("\n") };
}

/**
 * How often the server answered the machine's own boot script requests with deploy or disk
 * (since it last started): iPXE's through the CGI (the test's own requests from the host, get
 * above, do not count), GRUB's over TFTP from the machine's folder.
 */
function bootAnswers(machine: PxeMachine, answer: "deploy" | "disk"): number {
  const log = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8");
  const lines = log.match(new RegExp(`btw-img: boot ${machine.mac}: ${answer} by ipxe \\(to [0-9.]+\\)`, "g")) ?? [];
  return lines.filter((line) => !line.endsWith(`(to ${SERVER})`)).length + lab.tftpSent(machine, `grub/${answer}.cfg`);
}

/** How often machines loaded the deploy environment's initramfs: iPXE over HTTP, GRUB over TFTP. */
function initramfsLoads(): number {
  const http = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8").match(/initramfs\.img/g) ?? [];
  return http.length + lab.machines.reduce((sum, machine) => sum + lab.tftpSent(machine, "initramfs.img"), 0);
}

const cloudInitStatus = (machine: PxeMachine) => lab.cloudInitStatus(machine);
const bootId = (machine: PxeMachine) => guestExec(lab.domain(machine), "/bin/cat", ["/proc/sys/kernel/random/boot_id"]).stdout.trim();

/**
 * Files under roots (small ones: seeds, state, synth output, logs) that hold text
 * and that any user can read: the file readable by others and every folder above it
 * searchable by others.
 */
function worldReadableHolders(text: string, roots: string[]): { holders: string[]; readable: string[] } {
  const found = spawnSync("sh", ["-c", 'find "$@" -xdev -type f -size -8M -print0 2>/dev/null | xargs -0 -r grep -lF -e "$0" 2>/dev/null; true', text, ...roots], { encoding: "utf8" });
  const holders = found.stdout.split("\n").filter(Boolean);
  const readableByOthers = (file: string): boolean => {
    if ((fs.statSync(file).mode & 0o004) === 0) return false;
    for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
      if ((fs.statSync(dir).mode & 0o001) === 0) return false;
      if (dir === "/") return true;
    }
  };
  return { holders, readable: holders.filter(readableByOthers) };
}

describe("deploy blank UEFI and BIOS machines over PXE from the captured image", () => {
  const underTest = new PxeLabUnderTest(lab, "baremetal-pxe");
  const { workspace } = underTest;

  const tokens = new Map<PxeMachine, string>();
  const secretRoots = () => [lab.options.stateDir, workspace.dir, process.env.BTW_CACHE_DIR as string];

  beforeAll(async () => {
    await underTest.start();
    fs.writeFileSync(workspace.configFile, stringify(labConfig()));
  }, 1_800_000);

  afterAll(() => underTest.stop(), 900_000);

  test("`cdktf deploy baremetal` captures the image, builds the deploy environment and starts dnsmasq on the bridge only", async () => {
    const run = await underTest.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toHaveLength(1);
    // DHCP and TFTP sockets are tied to the test bridge, never to other interfaces.
    const pid = fs.readFileSync(path.join(lab.serverDir, "dnsmasq.pid"), "utf8").trim();
    const sockets = execFileSync("ss", ["-H", "-ulpn"], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes(`pid=${pid},`));
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) expect(socket).toMatch(new RegExp(`(%${lab.bridge}|${SERVER.replace(/\./g, "\\.")}):(67|69)\\s`));
    // The HTTP server listens on the bridge address only.
    const httpd = fs.readFileSync(path.join(lab.serverDir, "httpd.pid"), "utf8").trim();
    const listening = execFileSync("ss", ["-Hltnp"], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes(`pid=${httpd},`))
      .map((line) => line.split(/\s+/)[3]);
    expect(listening).toEqual([`${SERVER}:18181`]);
    for (const machine of lab.machines) {
      // The deploy script, the token archive and the seed go only to the machine's own address (this is the host's).
      const hyphens = machine.mac.replace(/:/g, "-");
      const script = get(`${BASE}/cgi-bin/boot?mac=${hyphens}`).body;
      expect(script).toContain(`${machine.name} boots from its disk`);
      expect(get(`${BASE}/cgi-bin/initrd?mac=${hyphens}`).code).toBe(404);
      tokens.set(machine, lab.token(machine));
      expect(get(`${BASE}/cgi-bin/seed/${lab.token(machine)}/user-data`).code).toBe(404);
      expect(get(`${BASE}/cgi-bin/seed/${machine.mac}/user-data`).code).toBe(404);
    }
    // The host holds the user data (the server's copy, the synth output) for root only.
    const { holders, readable } = worldReadableHolders(SECRET, secretRoots());
    expect(holders).toContain(path.join(lab.serverDir, "machines", BIOS.mac, "user-data"));
    expect(readable).toEqual([]);
  }, 2_400_000);

  test("the metal deploy environment has the generic kernel, ext4 and the firmware its drivers ask for", () => {
    const deployDir = (profile: string) => fs.realpathSync(path.join(lab.serverDir, "http", "deploy", profile));
    const kernel = (profile: string) => JSON.parse(fs.readFileSync(path.join(deployDir(profile), "build.json"), "utf8")).kernel_version as string;
    // Debian's generic image boots the generic kernel already; metal keeps it, and the deploy environment uses it.
    for (const profile of ["minimal", "metal"]) expect(kernel(profile)).toMatch(/^\d+\.\d+\.\d+.*-amd64$/);
    for (const profile of ["minimal", "metal"]) expect(kernel(profile)).not.toContain("-cloud-");
    const list = (file: string) => execFileSync("sh", ["-c", `zstd -dc "${deployDir("metal")}/${file}" | cpio -t --quiet`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }).split("\n");
    const [files, tools] = [list("initramfs.img"), list("tools.img")];
    // What the boot loader loads brings the network up; storage drivers and programs come after it.
    expect(files).toContain(`lib/modules/${kernel("metal")}/kernel/drivers/net/virtio_net.ko`);
    expect(files).not.toContain(`lib/modules/${kernel("metal")}/kernel/fs/ext4/ext4.ko`);
    expect(tools).toContain(`lib/modules/${kernel("metal")}/kernel/fs/ext4/ext4.ko`);
    expect(tools).toContain("usr/lib/btw/restore.sh");
    expect(tools).toContain("usr/lib/btw/layouts/single.sh");
    // Its layout table: the one line of lib/config/layout.ts for the layout its machines use.
    const table = execFileSync("sh", ["-c", `zstd -dc "${deployDir("metal")}/tools.img" | cpio -i --to-stdout --quiet usr/lib/btw/layouts.tab`], { encoding: "utf8" });
    expect(table).toBe(`${layoutTable([]).join("\n")}\n`);
    // firmware-linux-free (in the metal profile) has the CIS file the pcnet_cs NIC driver asks for.
    expect(files).toContain(`lib/modules/${kernel("metal")}/kernel/drivers/net/ethernet/8390/pcnet_cs.ko`);
    expect(files).toContain("lib/firmware/cis/NE2K.cis");
  });

  test("both blank machines PXE-boot, restore their disks, report done, then boot Debian from their disks with their hostnames", async () => {
    const started = lab.startMachines(workspace.dir);
    const reports = await lab.waitForReports(900_000);
    expect(lab.notDone(reports)).toEqual([]);
    // After the restore each machine reboots with its boot order unchanged: network first.
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, cloudInitStatus);
    for (const [kind, t] of Object.entries(lab.bootTimings(started, reports, statuses))) {
      console.log(`${kind}: PXE restore ${Math.round(t.restoreMs / 1000)} s; reboot to cloud-init done ${Math.round(t.firstBootMs / 1000)} s`);
    }
    const httpLog = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8");
    for (const machine of lab.machines) {
      // The seed reached the machine (its own address, with its token), and its token no console line.
      expect(httpLog).toContain(`btw-img: seed ${machine.mac}: user-data`);
      expect(fs.readFileSync(lab.consoleLog(machine), "utf8")).not.toContain(tokens.get(machine)!);
      const domain = lab.domain(machine);
      const status = statuses.get(machine)!.value;
      expect(status).toContain("status: done");
      // NoCloud read the seed the restore wrote onto the root file system.
      expect(status).toMatch(/seed=\/var\/lib\/cloud\/seed\/nocloud/);
      expect(guestExec(domain, "/bin/hostname", []).stdout.trim()).toBe(machine.name);
      expect(guestExec(domain, "/bin/cat", ["/run/btw-runcmd"]).stdout.trim()).toBe(`btw-runcmd-${machine.name}-1`);
      // The firmware the system came up with is the machine's own, Secure Boot included.
      expect(guestExec(domain, "/bin/sh", ["-c", "test -d /sys/firmware/efi && echo uefi || echo bios"]).stdout.trim()).toBe(machine.firmware === "bios" ? "bios" : "uefi");
      if (machine.firmware === "uefi-secure") expect(guestExec(domain, "/usr/bin/mokutil", ["--sb-state"]).stdout).toContain("SecureBoot enabled");
      // Each machine runs the kernel of its profile's image, the one its deploy environment was built from.
      const kernel = guestExec(domain, "/bin/uname", ["-r"]).stdout.trim();
      const deployKernel = JSON.parse(fs.readFileSync(path.join(lab.serverDir, "http", "deploy", machine.profile, "build.json"), "utf8")).kernel_version;
      expect({ machine: machine.name, kernel }).toEqual({ machine: machine.name, kernel: deployKernel });
      // ...and was restored by the deploy environment built from that same image (iPXE's over HTTP, GRUB's over TFTP).
      if (lab.tftpSent(machine, "vmlinuz") > 0) {
        const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
        expect(sha(path.join(lab.tftpFolder(machine), "vmlinuz"))).toBe(sha(path.join(lab.serverDir, "http", "deploy", machine.profile, "vmlinuz")));
      } else {
        expect(httpLog).toContain(`/deploy/${machine.profile}/vmlinuz`);
      }
      // The root file system grew to the 5 GiB disk.
      const rootSize = Number(guestExec(domain, "/bin/df", ["-B1", "--output=size", "/"]).stdout.split("\n")[1].trim());
      expect(rootSize).toBeGreaterThan(4 * 1024 ** 3);
      // The server sent the machine the deploy script once, and its first boot did not ask the server
      // again: the BIOS one was started by kexec, the UEFI one went to its disk (BootNext).
      expect({ machine: machine.name, deploy: bootAnswers(machine, "deploy"), disk: bootAnswers(machine, "disk") }).toEqual({ machine: machine.name, deploy: 1, disk: 0 });
    }
    const biosConsole = fs.readFileSync(lab.consoleLog(BIOS), "utf8");
    expect(biosConsole).toContain("restore done; starting the restored system (kexec)");
    // The deploy environment made the by-id link the UEFI machine's config names its disk by.
    const [uefi] = lab.machines;
    const uefiConsole = fs.readFileSync(lab.consoleLog(uefi), "utf8");
    expect(uefiConsole).toMatch(/restore: disk \/dev\/disk\/by-id\/virtio-btw-uefi-disk: \/dev\/vda, model -, serial btw-uefi-disk, wwid -, 5368709120 bytes/);
    // Its deploy went through Debian's signed GRUB (over TFTP); its first boot went straight to its disk (BootNext).
    expect(lab.tftpSent(uefi, "grub/deploy.cfg")).toBe(1);
    expect(uefiConsole).toContain("UEFI: the next boot starts the restored disk (BootNext)");
    expect(uefiConsole).toContain("Secure Boot is on: the restored system starts through the firmware (no kexec)");
    // Each machine loaded the deploy environment once.
    expect(initramfsLoads()).toBe(lab.machines.length);

    // Powered off and on, the UEFI machine boots network first: the server's GRUB chainloads its
    // disk at once, and the firmware never falls through to its PXE-over-IPv6 or HTTP boot options.
    const firstBoot = bootId(uefi);
    lab.powerCycle(uefi);
    await lab.waitForAll("the installed UEFI system to boot again", 1_200_000, (m) => (cloudInitStatus(m) && bootId(m) !== firstBoot ? true : undefined), [uefi]);
    expect(lab.tftpSent(uefi, "grub/disk.cfg")).toBeGreaterThanOrEqual(1);
    const rebootConsole = fs.readFileSync(lab.consoleLog(uefi), "utf8");
    expect(rebootConsole).toContain(`btw-img: ${uefi.name} boots from its disk`);
    // (OVMF names each network boot option it starts on the console: the IPv4 one is there.)
    expect(rebootConsole).toContain("PXE over IPv4");
    expect(rebootConsole.match(/PXE over IPv6|HTTP Boot over/g) ?? []).toEqual([]);
    expect(guestExec(lab.domain(uefi), "/usr/bin/mokutil", ["--sb-state"]).stdout).toContain("SecureBoot enabled");
    // No network boot after "done" loaded the deploy environment again.
    expect(initramfsLoads()).toBe(lab.machines.length);
  }, 4_000_000);

  test("btw metal status shows each machine's reports in order with moving progress; btw metal inventory its disks, NIC and firmware", () => {
    const metal = (args: string[]) => spawnSync(path.join(PROJECT_DIR, "bin", "btw"), ["metal", ...args], { encoding: "utf8", env: { ...process.env, BTW_CONFIG: workspace.configFile } });
    const status = JSON.parse(metal(["status", "--json"]).stdout);
    for (const machine of lab.machines) {
      const entry = status.find((m: { name: string }) => m.name === machine.name);
      expect({ machine: machine.name, state: entry.state }).toEqual({ machine: machine.name, state: "done" });
      const reports = entry.reports as { state: string; percent?: number; at: number }[];
      const states = reports.map((report) => report.state).filter((state, i, all) => state !== all[i - 1]);
      expect({ machine: machine.name, states }).toEqual({ machine: machine.name, states: ["deploy-env-up", "started", "downloading", "writing", "configuring", "done"] });
      const percents = (state: string) => reports.filter((report) => report.state === state).map((report) => report.percent as number);
      // Moving: the download ends at 100; the write shows partclone's count at least twice.
      expect(percents("downloading")[percents("downloading").length - 1]).toBe(100);
      expect(new Set(percents("writing")).size).toBeGreaterThanOrEqual(2);
      expect(reports.map((report) => report.at)).toEqual([...reports.map((report) => report.at)].sort((a, b) => a - b));
      const inventory = JSON.parse(metal(["inventory", machine.name, "--json"]).stdout);
      expect(inventory).toMatchObject({ firmware: machine.firmware === "bios" ? "bios" : "uefi", secure_boot: machine.firmware === "uefi-secure", cpus: 1 });
      expect(inventory.nics).toEqual(expect.arrayContaining([expect.objectContaining({ mac: machine.mac, link: true, driver: "virtio_net" })]));
      expect(inventory.disks).toEqual([expect.objectContaining({ name: "/dev/vda", size_bytes: 5 * 1024 ** 3 })]);
    }
    const [uefi] = lab.machines;
    const uefiDisks = JSON.parse(metal(["inventory", uefi.name, "--json"]).stdout).disks;
    expect(uefiDisks[0]).toMatchObject({ serial: "btw-uefi-disk", by_id: "/dev/disk/by-id/virtio-btw-uefi-disk" });
    expect(metal(["status"]).stdout).toMatch(new RegExp(`^${uefi.name} +${uefi.mac} +done +- +\\d{4}-`, "m"));
  });
  test("after done the seed leaves the server: its token reaches nothing, and no file others can read holds the user data", () => {
    for (const machine of lab.machines) {
      expect(lab.record(machine)).toBe("done");
      expect(get(`${BASE}/cgi-bin/seed/${tokens.get(machine)}/user-data`).code).toBe(404);
      expect(fs.existsSync(path.join(lab.recordsDir, `${machine.mac}.token`))).toBe(false);
      expect(fs.existsSync(path.join(lab.serverDir, "machines", machine.mac, "token.cpio"))).toBe(false);
    }
    expect(worldReadableHolders(SECRET, secretRoots()).readable).toEqual([]);
  });

  test("a server that lost its records (and has a new user_data) never writes over the installed machine: it is kept and boots its disk with its file", async () => {
    const domain = lab.domain(BIOS);
    expect(guestExec(domain, "/bin/sh", ["-c", "echo kept > /var/lib/btw-kept && sync"]).exitcode).toBe(0);
    const firstBoot = bootId(BIOS);
    const httpdBefore = fs.readFileSync(path.join(lab.serverDir, "httpd.pid"), "utf8");
    // What a rebuilt PXE host, a new state_dir or a lab rename leaves: no record of the install.
    expect(lab.record(BIOS)).toBe("done");
    fs.rmSync(path.join(lab.recordsDir, BIOS.mac));
    fs.writeFileSync(workspace.configFile, stringify(labConfig([BIOS])));
    const run = await underTest.deploy(1_200_000);
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    // The server step was replaced (its stop ran); the machine, unknown to it now, is armed with a new token.
    expect(fs.readFileSync(path.join(lab.serverDir, "httpd.pid"), "utf8")).not.toBe(httpdBefore);
    expect(lab.record(BIOS)).toBe("");
    expect(lab.token(BIOS)).not.toBe(tokens.get(BIOS));

    lab.powerCycle(BIOS);
    const reports = await lab.waitForReports(1_200_000, [BIOS]);
    expect({ report: reports.get(BIOS)!.value, console: reports.get(BIOS)!.value === "kept" ? "" : lab.consoleTail(BIOS) }).toEqual({ report: "kept", console: "" });
    await lab.waitForAll("the kept system to boot again", 1_200_000, (machine) => (cloudInitStatus(machine) && bootId(machine) !== firstBoot ? true : undefined), [BIOS]);
    expect(guestExec(domain, "/bin/cat", ["/var/lib/btw-kept"]).stdout.trim()).toBe("kept");
    // Still the first install's seed on its disk: nothing was restored, wipe: true or not.
    const seed = guestExec(domain, "/bin/cat", ["/var/lib/cloud/seed/nocloud/user-data"]).stdout;
    expect(seed).toContain("btw-runcmd-metal-bios-1");
    expect(seed).not.toContain("btw-runcmd-metal-bios-2");
    expect(fs.readFileSync(lab.consoleLog(BIOS), "utf8")).toMatch(/restore: the disks hold another btw-img install \([0-9a-f]{64}\): nothing written/);
    expect(bootAnswers(BIOS, "deploy")).toBe(1);
    expect(initramfsLoads()).toBe(1);
    // Kept is installed: its token and its deploy script left the server, so its next network boot is its disk's.
    expect(fs.existsSync(path.join(lab.recordsDir, `${BIOS.mac}.token`))).toBe(false);
    expect(fs.existsSync(path.join(lab.serverDir, "machines", BIOS.mac, "boot.ipxe"))).toBe(false);
  }, 2_400_000);

  test("`btw metal reinstall` restores the machine exactly once, with its new user_data", async () => {
    const reinstall = spawnSync(path.join(PROJECT_DIR, "bin", "btw"), ["metal", "reinstall", BIOS.name], {
      env: { ...process.env, BTW_CONFIG: workspace.configFile, BTW_STATE_DIR: path.join(workspace.dir, "state") },
      encoding: "utf8",
    });
    expect(`${reinstall.stdout}${reinstall.stderr}`).toContain(`${BIOS.mac} (${BIOS.name}) was kept: its next network boot restores it`);
    expect(reinstall.status).toBe(0);
    expect(lab.record(BIOS)).toBe("");
    const token = lab.token(BIOS);
    expect(token).not.toBe(tokens.get(BIOS));
    const [diskAnswers, deployAnswers, loads] = [bootAnswers(BIOS, "disk"), bootAnswers(BIOS, "deploy"), initramfsLoads()];

    lab.powerCycle(BIOS);
    const reports = await lab.waitForAll("the reinstall to report", 1_200_000, (machine) => (["done", "failed"].includes(lab.record(machine)) ? lab.record(machine) : undefined), [BIOS]);
    expect({ report: reports.get(BIOS)!.value, console: reports.get(BIOS)!.value === "done" ? "" : lab.consoleTail(BIOS) }).toEqual({ report: "done", console: "" });
    const domain = lab.domain(BIOS);
    await lab.waitForAll("the reinstalled system", 1_500_000, (machine) => (cloudInitStatus(machine) ? true : undefined), [BIOS]);
    expect(guestExec(domain, "/bin/cat", ["/run/btw-runcmd"]).stdout.trim()).toBe("btw-runcmd-metal-bios-2");
    expect(guestExec(domain, "/bin/sh", ["-c", "test -e /var/lib/btw-kept && echo kept || echo gone"]).stdout.trim()).toBe("gone");
    // One deploy script, one deploy environment, which replaced the install (the reinstall's
    // btw.replace=1); after "done" the restored system started by kexec, without asking the server.
    expect(fs.readFileSync(lab.consoleLog(BIOS), "utf8")).toMatch(/restore: replacing the btw-img install [0-9a-f]{64} \(--replace\)/);
    expect(bootAnswers(BIOS, "deploy")).toBe(deployAnswers + 1);
    expect(initramfsLoads()).toBe(loads + 1);
    expect(bootAnswers(BIOS, "disk")).toBe(diskAnswers);
    expect(get(`${BASE}/cgi-bin/seed/${token}/user-data`).code).toBe(404);
  }, 3_000_000);

  test("a new state_dir stops the server in its old folder and starts it in the new one; with the last machine gone, no server runs", async () => {
    lab.stopMachines();
    // Beside the lab's state folder, made by this test only.
    const movedStateDir = `${path.dirname(lab.serverDir)}-moved`;
    const movedServer = path.join(movedStateDir, path.basename(lab.serverDir));
    const running = (serverDir: string) =>
      quiet("pgrep", ["-f", `dnsmasq --conf-file=${serverDir}/`])
        .stdout.split("\n")
        .filter(Boolean);
    try {
      expect(lab.dnsmasqPids()).toHaveLength(1);
      fs.writeFileSync(workspace.configFile, stringify(labConfig([BIOS], { stateDir: movedStateDir })));
      const moved = await underTest.deploy(900_000);
      expect(moved.output).not.toMatch(/Error:/);
      expect(moved.status).toBe(0);
      // The destroy step of the replaced server stopped the folder it had started in.
      expect(lab.dnsmasqPids()).toEqual([]);
      expect(quiet("pgrep", ["-f", `httpd .*${lab.serverDir}`]).stdout).toBe("");
      expect(fs.existsSync(lab.serverDir)).toBe(false);
      expect(running(movedServer)).toHaveLength(1);

      // No machine left: the server's resource stays, and its replacement stops the running server.
      fs.writeFileSync(workspace.configFile, stringify(labConfig([BIOS], { stateDir: movedStateDir, machines: [] })));
      const none = await underTest.deploy(900_000);
      expect(none.output).not.toMatch(/Error:/);
      expect(none.status).toBe(0);
      expect(running(movedServer)).toEqual([]);
      expect(quiet("pgrep", ["-f", `httpd .*${movedServer}`]).stdout).toBe("");
      expect(fs.existsSync(movedServer)).toBe(false);
    } finally {
      fs.rmSync(movedStateDir, { recursive: true, force: true });
    }
  }, 2_000_000);

  test("`cdktf destroy baremetal` stops dnsmasq and the HTTP server and removes their files", async () => {
    lab.stopMachines();
    const run = await underTest.destroy();
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toEqual([]);
    expect(quiet("pgrep", ["-f", `httpd .*${lab.serverDir}`]).stdout).toBe("");
    expect(fs.existsSync(lab.serverDir)).toBe(false);
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
  }, 900_000);
});
