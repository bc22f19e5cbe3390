// Bare metal end to end: `cdktf deploy baremetal` starts our PXE server on an
// isolated libvirt network; two blank machines, one UEFI (profile minimal) and
// one BIOS (profile metal: generic kernel), both with boot order network then
// disk, PXE-boot at the same time, restore their profile's captured image and
// report done; the next network boot is answered with "exit 1", so each
// firmware goes on to its disk, where cloud-init finishes with the hostname
// configured for the machine's MAC. `cdktf destroy baremetal` leaves nothing.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { LabWorkspace } from "../helpers/cdktf-cli";
import { guestExec, hostLeftovers, leftovers } from "../helpers/libvirt";
import { PxeLab, quiet } from "../helpers/pxe-lab";

const lab = new PxeLab({
  lab: "bmpxe",
  subnet: "10.213.50",
  stateDir: "/var/lib/btw-img/pxe-test",
  machines: [
    { name: "metal-uefi", mac: "52:54:00:bd:50:01", firmware: "uefi", profile: "minimal" },
    // metal: Debian's generic kernel, in the deploy environment and the restored system.
    { name: "metal-bios", mac: "52:54:00:bd:50:02", firmware: "bios", profile: "metal" },
  ],
});
const SERVER = lab.serverAddress;

describe("deploy blank UEFI and BIOS machines over PXE from the captured image", () => {
  const workspace = new LabWorkspace();

  beforeAll(() => {
    lab.cleanup();
    const config = lab.labConfig({
      labCidr: "10.213.51.0/24",
      httpPort: 18181,
      dhcpRange: "10.213.50.100,10.213.50.150",
      userData: ({ name }) => ({ runcmd: [`echo btw-runcmd-${name} > /run/btw-runcmd`] }),
    });
    fs.writeFileSync(workspace.configFile, stringify(config));
    lab.createNetwork(workspace.dir);
  }, 1_800_000);

  afterAll(() => {
    lab.stopMachines();
    workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    lab.cleanup();
    workspace.remove();
  }, 900_000);

  test("`cdktf deploy baremetal` captures the image, builds the deploy environment and starts dnsmasq on the bridge only", () => {
    const run = workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 2_400_000);
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
    for (const machine of lab.machines) {
      const seed = execFileSync("curl", ["-fsS", `http://${SERVER}:18181/seeds/${machine.mac}/meta-data`], { encoding: "utf8" });
      expect(seed).toContain(`local-hostname: ${machine.name}`);
    }
  }, 2_400_000);

  test("the metal deploy environment has the generic kernel, ext4 and the firmware its drivers ask for", () => {
    const deployDir = (profile: string) => fs.realpathSync(path.join(lab.serverDir, "http", "deploy", profile));
    const kernel = (profile: string) => JSON.parse(fs.readFileSync(path.join(deployDir(profile), "build.json"), "utf8")).kernel_version as string;
    // Debian's generic image boots the generic kernel already; metal keeps it, and the deploy environment uses it.
    for (const profile of ["minimal", "metal"]) expect(kernel(profile)).toMatch(/^\d+\.\d+\.\d+.*-amd64$/);
    for (const profile of ["minimal", "metal"]) expect(kernel(profile)).not.toContain("-cloud-");
    const files = execFileSync("sh", ["-c", `zstd -dc "${deployDir("metal")}/initramfs.img" | cpio -t --quiet`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }).split("\n");
    expect(files).toContain(`lib/modules/${kernel("metal")}/kernel/fs/ext4/ext4.ko`);
    // firmware-linux-free (in the metal profile) has the CIS file the pcnet_cs NIC driver asks for.
    expect(files).toContain(`lib/modules/${kernel("metal")}/kernel/drivers/net/ethernet/8390/pcnet_cs.ko`);
    expect(files).toContain("lib/firmware/cis/NE2K.cis");
  });

  test("both blank machines PXE-boot, restore their disks, report done, then boot Debian from their disks with their hostnames", () => {
    const started = lab.startMachines(workspace.dir);
    const reports = lab.waitForReports(900_000);
    lab.expectAllDone(reports);
    // After the restore each machine reboots with its boot order unchanged: network first.
    // UEFI firmware then also tries its other network boot options (PXE over IPv6, HTTP
    // boot) before the disk, which takes a few minutes under emulation.
    const statuses = lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => {
      const domain = lab.domain(machine);
      if (quiet("virsh", ["-c", "qemu:///system", "qemu-agent-command", domain, '{"execute":"guest-ping"}']).status !== 0) return undefined;
      const result = guestExec(domain, "/usr/bin/cloud-init", ["status", "--long"]);
      return /status: (done|error)/.test(result.stdout) ? result.stdout : undefined;
    });
    const timings = Object.fromEntries(
      lab.machines.map((machine) => {
        const restoredAt = reports.get(machine)!.at;
        return [`${machine.firmware} ${machine.profile}`, { restoreMs: restoredAt - started, firstBootMs: statuses.get(machine)!.at - restoredAt }];
      }),
    );
    for (const [kind, t] of Object.entries(timings)) {
      console.log(`${kind}: PXE restore ${Math.round(t.restoreMs / 1000)} s; reboot to cloud-init done ${Math.round(t.firstBootMs / 1000)} s`);
    }
    // `npm run bench` runs this test to time a blank machine from power-on to cloud-init done.
    if (process.env.BTW_BENCH_TIMINGS) fs.writeFileSync(process.env.BTW_BENCH_TIMINGS, JSON.stringify(timings));
    const httpLog = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8");
    for (const machine of lab.machines) {
      const domain = lab.domain(machine);
      const status = statuses.get(machine)!.value;
      expect(status).toContain("status: done");
      // NoCloud read the seed the restore wrote onto the root file system.
      expect(status).toMatch(/seed=\/var\/lib\/cloud\/seed\/nocloud/);
      expect(guestExec(domain, "/bin/hostname", []).stdout.trim()).toBe(machine.name);
      expect(guestExec(domain, "/bin/cat", ["/run/btw-runcmd"]).stdout.trim()).toBe(`btw-runcmd-${machine.name}`);
      // The firmware the system came up with is the machine's own.
      expect(guestExec(domain, "/bin/sh", ["-c", "test -d /sys/firmware/efi && echo uefi || echo bios"]).stdout.trim()).toBe(machine.firmware);
      // Each machine runs the kernel of its profile's image, the one its deploy environment was built from.
      const kernel = guestExec(domain, "/bin/uname", ["-r"]).stdout.trim();
      const deployKernel = JSON.parse(fs.readFileSync(path.join(lab.serverDir, "http", "deploy", machine.profile, "build.json"), "utf8")).kernel_version;
      expect({ machine: machine.name, kernel }).toEqual({ machine: machine.name, kernel: deployKernel });
      // ...and was restored by the deploy environment built from that same image.
      expect(httpLog).toContain(`/deploy/${machine.profile}/vmlinuz`);
      // The root file system grew to the 5 GiB disk.
      const rootSize = Number(guestExec(domain, "/bin/df", ["-B1", "--output=size", "/"]).stdout.split("\n")[1].trim());
      expect(rootSize).toBeGreaterThan(4 * 1024 ** 3);
      // The machine asked for its boot script at least twice (the deploy, then the disk boot).
      const hyphens = machine.mac.replace(/:/g, "-");
      expect((httpLog.match(new RegExp(`/boot/${hyphens}\\.ipxe`, "g")) ?? []).length).toBeGreaterThanOrEqual(2);
    }
    // Each machine loaded the deploy environment once: the network boot after "done" went to the disk.
    expect(httpLog.match(/initramfs\.img/g) ?? []).toHaveLength(lab.machines.length);
  }, 3_000_000);

  test("`cdktf destroy baremetal` stops dnsmasq and the HTTP server and removes their files", () => {
    lab.stopMachines();
    const run = workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toEqual([]);
    expect(quiet("pgrep", ["-f", `httpd .*${lab.serverDir}`]).stdout).toBe("");
    expect(fs.existsSync(lab.serverDir)).toBe(false);
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
  }, 900_000);
});
