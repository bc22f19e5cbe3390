// Bare metal end to end: `cdktf deploy baremetal` starts our PXE server on an
// isolated libvirt network; two blank machines, one UEFI (profile minimal) and
// one BIOS (profile metal: generic kernel), both with boot order network then
// disk, PXE-boot at the same time, restore their profile's captured image and
// report done; the next network boot is answered with "exit 1", so each
// firmware goes on to its disk, where cloud-init finishes with the hostname
// configured for the machine's MAC. `cdktf destroy baremetal` leaves nothing.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config";
import { LabWorkspace } from "../helpers/cdktf-cli";
import { fixtureImage } from "../helpers/fixture-image";
import { testLab } from "../helpers/lab-yaml";
import { guestExec, hostLeftovers, leftovers, virsh } from "../helpers/libvirt";

const LAB = "bmpxe";
const PREFIX = `btw-${LAB}`;
const NETWORK = `${PREFIX}-net`;
const BRIDGE = "virbr-bmpxe";
const SERVER = "10.213.50.1";
type Firmware = "uefi" | "bios";
interface TestMachine {
  name: string;
  mac: string;
  firmware: Firmware;
  /** metal: Debian's generic kernel, in the deploy environment and the restored system. */
  profile: "minimal" | "metal";
  uuid: string;
}
const MACHINES: TestMachine[] = [
  { name: "metal-uefi", mac: "52:54:00:bd:50:01", firmware: "uefi", profile: "minimal", uuid: "6d1b0c3e-5a1f-4b7e-9b0e-62a1b5e0b150" },
  { name: "metal-bios", mac: "52:54:00:bd:50:02", firmware: "bios", profile: "metal", uuid: "6d1b0c3e-5a1f-4b7e-9b0e-62a1b5e0b151" },
];
const STATE_DIR = "/var/lib/btw-img/pxe-test";
const domainName = (machine: TestMachine) => `${PREFIX}-${machine.name}`;
const diskFile = (machine: TestMachine) => `/var/lib/libvirt/images/${domainName(machine)}.qcow2`;
const consoleLog = (machine: TestMachine) => `/var/log/libvirt/qemu/${domainName(machine)}-console.log`;

const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });

function cleanup(): void {
  for (const machine of MACHINES) {
    const domain = domainName(machine);
    quiet("virsh", ["-c", "qemu:///system", "destroy", domain]);
    quiet("virsh", ["-c", "qemu:///system", "undefine", domain, "--nvram"]);
    for (const file of [diskFile(machine), consoleLog(machine), `/var/log/libvirt/qemu/${domain}.log`]) fs.rmSync(file, { force: true });
  }
  quiet("virsh", ["-c", "qemu:///system", "net-destroy", NETWORK]);
  quiet("virsh", ["-c", "qemu:///system", "net-undefine", NETWORK]);
  quiet("sh", [path.join(PROJECT_DIR, "scripts", "pxe-server.sh"), "stop", "--state-dir", path.join(STATE_DIR, LAB)]);
  fs.rmSync(STATE_DIR, { recursive: true, force: true });
}

function dnsmasqPids(): string[] {
  return quiet("pgrep", ["-f", `dnsmasq --conf-file=${STATE_DIR}`])
    .stdout.split("\n")
    .filter(Boolean);
}

function consoleTail(machine: TestMachine): string {
  const log = consoleLog(machine);
  const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").slice(-40).join("\n") : "(no console log)";
  return `console of ${machine.name}:\n${tail}`;
}

/** Polls every machine until probe gives a value for each; returns values and when each came. */
function waitForAll<T>(what: string, timeoutMs: number, probe: (machine: TestMachine) => T | undefined): Map<TestMachine, { value: T; at: number }> {
  const results = new Map<TestMachine, { value: T; at: number }>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const machine of MACHINES.filter((m) => !results.has(m))) {
      const value = probe(machine);
      if (value !== undefined) results.set(machine, { value, at: Date.now() });
    }
    if (results.size === MACHINES.length) return results;
    if (Date.now() > deadline) {
      const missing = MACHINES.filter((m) => !results.has(m));
      throw new Error(`timed out waiting for ${what} on ${missing.map((m) => m.name).join(", ")}\n${missing.map(consoleTail).join("\n")}`);
    }
    execFileSync("sleep", ["3"]);
  }
}

// Boot order per device, network first, then the disk: firmware follows only these.
function domainXml(machine: TestMachine): string {
  const domain = domainName(machine);
  const firmware =
    machine.firmware === "uefi"
      ? `<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>`
      : "";
  return `<domain type='qemu'>
  <name>${domain}</name>
  <uuid>${machine.uuid}</uuid>
  <memory unit='MiB'>1536</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    ${firmware}
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${diskFile(machine)}'/><target dev='vda' bus='virtio'/><boot order='2'/></disk>
    <interface type='network'><source network='${NETWORK}'/><mac address='${machine.mac}'/><model type='virtio'/><boot order='1'/></interface>
    <serial type='pty'><log file='${consoleLog(machine)}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>`;
}

describe("deploy blank UEFI and BIOS machines over PXE from the captured image", () => {
  const workspace = new LabWorkspace();

  beforeAll(() => {
    cleanup();
    const fixture = fixtureImage("trixie");
    // A file:// URL keeps the image's cache key stable between runs (no random port).
    const lab = testLab({
      name: LAB,
      vms: [{ name: "unused" }],
      extra: {
        image: { url: `file://${fixture.dir}/${fixture.archiveName}`, checksums: `file://${fixture.dir}/SHA512SUMS` },
        network: { name: `${LAB}-lab-net`, mode: "isolated", cidr: "10.213.51.0/24" },
        baremetal: {
          pxe: { interface: BRIDGE, address: SERVER, dhcp_range: "10.213.50.100,10.213.50.150", http_port: 18181, state_dir: STATE_DIR },
          machines: MACHINES.map(({ name, mac, profile }) => ({ name, mac, profile, user_data: { runcmd: [`echo btw-runcmd-${name} > /run/btw-runcmd`] } })),
        },
      },
    });
    fs.writeFileSync(workspace.configFile, stringify(lab));
    // Isolated (no <forward>), and without libvirt's own DHCP and DNS: our dnsmasq serves it.
    const netXml = path.join(workspace.dir, "net.xml");
    fs.writeFileSync(
      netXml,
      `<network><name>${NETWORK}</name><bridge name='${BRIDGE}'/><dns enable='no'/><ip address='${SERVER}' netmask='255.255.255.0'/></network>`
    );
    virsh(["net-define", netXml]);
    virsh(["net-start", NETWORK]);
  }, 1_800_000);

  afterAll(() => {
    workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    cleanup();
    workspace.remove();
  }, 900_000);

  test("`cdktf deploy baremetal` captures the image, builds the deploy environment and starts dnsmasq on the bridge only", () => {
    const run = workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 2_400_000);
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    expect(dnsmasqPids()).toHaveLength(1);
    // DHCP and TFTP sockets are tied to the test bridge, never to other interfaces.
    const pid = fs.readFileSync(path.join(STATE_DIR, LAB, "dnsmasq.pid"), "utf8").trim();
    const sockets = execFileSync("ss", ["-H", "-ulpn"], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes(`pid=${pid},`));
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) expect(socket).toMatch(new RegExp(`(%${BRIDGE}|${SERVER.replace(/\./g, "\\.")}):(67|69)\\s`));
    for (const machine of MACHINES) {
      const seed = execFileSync("curl", ["-fsS", `http://${SERVER}:18181/seeds/${machine.mac}/meta-data`], { encoding: "utf8" });
      expect(seed).toContain(`local-hostname: ${machine.name}`);
    }
  }, 2_400_000);

  test("both blank machines PXE-boot, restore their disks, report done, then boot Debian from their disks with their hostnames", () => {
    const started = Date.now();
    for (const machine of MACHINES) {
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", diskFile(machine), "5G"]);
      const xml = path.join(workspace.dir, `${machine.name}.xml`);
      fs.writeFileSync(xml, domainXml(machine));
      virsh(["define", xml]);
      virsh(["start", domainName(machine)]);
    }
    const reports = waitForAll("the restore to report", 900_000, (machine) => {
      const stateFile = path.join(STATE_DIR, LAB, "state", machine.mac);
      const state = fs.existsSync(stateFile) ? fs.readFileSync(stateFile, "utf8").trim() : "";
      return state === "done" || state === "failed" ? state : undefined;
    });
    for (const machine of MACHINES) {
      const report = reports.get(machine)!.value;
      expect({ machine: machine.name, report, console: report === "done" ? "" : consoleTail(machine) }).toEqual({ machine: machine.name, report: "done", console: "" });
    }
    // After the restore each machine reboots with its boot order unchanged: network first.
    // UEFI firmware then also tries its other network boot options (PXE over IPv6, HTTP
    // boot) before the disk, which takes a few minutes under emulation.
    const statuses = waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => {
      const domain = domainName(machine);
      if (quiet("virsh", ["-c", "qemu:///system", "qemu-agent-command", domain, '{"execute":"guest-ping"}']).status !== 0) return undefined;
      const result = guestExec(domain, "/usr/bin/cloud-init", ["status", "--long"]);
      return /status: (done|error)/.test(result.stdout) ? result.stdout : undefined;
    });
    const timings = Object.fromEntries(
      MACHINES.map((machine) => {
        const restoredAt = reports.get(machine)!.at;
        return [machine.firmware, { restoreMs: restoredAt - started, firstBootMs: statuses.get(machine)!.at - restoredAt }];
      }),
    );
    for (const [firmware, t] of Object.entries(timings)) {
      console.log(`${firmware}: PXE restore ${Math.round(t.restoreMs / 1000)} s; reboot to cloud-init done ${Math.round(t.firstBootMs / 1000)} s`);
    }
    // `npm run bench` runs this test to time a blank machine from power-on to cloud-init done.
    if (process.env.BTW_BENCH_TIMINGS) fs.writeFileSync(process.env.BTW_BENCH_TIMINGS, JSON.stringify(timings));
    const httpLog = fs.readFileSync(path.join(STATE_DIR, LAB, "httpd.log"), "utf8");
    for (const machine of MACHINES) {
      const domain = domainName(machine);
      const status = statuses.get(machine)!.value;
      expect(status).toContain("status: done");
      // NoCloud read the seed the restore wrote onto the root file system.
      expect(status).toMatch(/seed=\/var\/lib\/cloud\/seed\/nocloud/);
      expect(guestExec(domain, "/bin/hostname", []).stdout.trim()).toBe(machine.name);
      expect(guestExec(domain, "/bin/cat", ["/run/btw-runcmd"]).stdout.trim()).toBe(`btw-runcmd-${machine.name}`);
      // The firmware the system came up with is the machine's own.
      expect(guestExec(domain, "/bin/sh", ["-c", "test -d /sys/firmware/efi && echo uefi || echo bios"]).stdout.trim()).toBe(machine.firmware);
      // Each machine runs the kernel of its profile's image: the cloud kernel, or with metal the generic one.
      const kernel = guestExec(domain, "/bin/uname", ["-r"]).stdout.trim();
      expect({ machine: machine.name, cloudKernel: kernel.includes("-cloud-") }).toEqual({ machine: machine.name, cloudKernel: machine.profile !== "metal" });
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
    expect(httpLog.match(/initramfs\.img/g) ?? []).toHaveLength(MACHINES.length);
  }, 3_000_000);

  test("`cdktf destroy baremetal` stops dnsmasq and the HTTP server and removes their files", () => {
    for (const machine of MACHINES) quiet("virsh", ["-c", "qemu:///system", "destroy", domainName(machine)]);
    const run = workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    expect(run.status).toBe(0);
    expect(dnsmasqPids()).toEqual([]);
    expect(quiet("pgrep", ["-f", `httpd .*${STATE_DIR}`]).stdout).toBe("");
    expect(fs.existsSync(path.join(STATE_DIR, LAB))).toBe(false);
    cleanup();
    expect(leftovers(PREFIX)).toEqual([]);
    expect(hostLeftovers()).toEqual([]);
  }, 900_000);
});
