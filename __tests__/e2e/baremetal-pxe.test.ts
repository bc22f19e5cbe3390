// Bare metal end to end: `cdktf deploy baremetal` starts our PXE server on an
// isolated libvirt network; a blank UEFI machine (boot order: network, then
// disk) PXE-boots, restores the captured image and reports done; the server
// then answers its MAC with "exit"; the VM is switched to boot from its disk
// (see the note in the test), where cloud-init finishes with the hostname
// configured for its MAC. `cdktf destroy baremetal` leaves nothing.
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
const MACHINE = { name: "metal-uefi", mac: "52:54:00:bd:50:01" };
const DOMAIN = `${PREFIX}-${MACHINE.name}`;
const STATE_DIR = "/var/lib/btw-img/pxe-test";
const DISK = `/var/lib/libvirt/images/${DOMAIN}.qcow2`;
const CONSOLE_LOG = `/var/log/libvirt/qemu/${DOMAIN}-console.log`;

const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });

function cleanup(): void {
  quiet("virsh", ["-c", "qemu:///system", "destroy", DOMAIN]);
  quiet("virsh", ["-c", "qemu:///system", "undefine", DOMAIN, "--nvram"]);
  quiet("virsh", ["-c", "qemu:///system", "net-destroy", NETWORK]);
  quiet("virsh", ["-c", "qemu:///system", "net-undefine", NETWORK]);
  quiet("sh", [path.join(PROJECT_DIR, "scripts", "pxe-server.sh"), "stop", "--state-dir", path.join(STATE_DIR, LAB)]);
  for (const file of [DISK, CONSOLE_LOG, `/var/log/libvirt/qemu/${DOMAIN}.log`]) fs.rmSync(file, { force: true });
}

function dnsmasqPids(): string[] {
  return quiet("pgrep", ["-f", `dnsmasq --conf-file=${STATE_DIR}`])
    .stdout.split("\n")
    .filter(Boolean);
}

function consoleTail(): string {
  return fs.existsSync(CONSOLE_LOG) ? fs.readFileSync(CONSOLE_LOG, "utf8").split("\n").slice(-40).join("\n") : "(no console log)";
}

function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined): T {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; console:\n${consoleTail()}`);
    execFileSync("sleep", ["3"]);
  }
}

function domainXml(bootFrom: "network" | "disk"): string {
  const [netOrder, diskOrder] = bootFrom === "network" ? [1, 2] : [2, 1];
  return `<domain type='qemu'>
  <name>${DOMAIN}</name>
  <uuid>6d1b0c3e-5a1f-4b7e-9b0e-62a1b5e0b150</uuid>
  <memory unit='MiB'>1536</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <!-- Boot order per device (network first, then the disk): OVMF follows only these. -->
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${DISK}'/><target dev='vda' bus='virtio'/><boot order='${diskOrder}'/></disk>
    <interface type='network'><source network='${NETWORK}'/><mac address='${MACHINE.mac}'/><model type='virtio'/><boot order='${netOrder}'/></interface>
    <serial type='pty'><log file='${CONSOLE_LOG}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>`;
}

describe("deploy a blank UEFI machine over PXE from the captured image", () => {
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
          machines: [{ ...MACHINE, user_data: { runcmd: ["echo btw-baremetal-runcmd > /run/btw-runcmd"] } }],
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
    const seed = execFileSync("curl", ["-fsS", `http://${SERVER}:18181/seeds/${MACHINE.mac}/meta-data`], { encoding: "utf8" });
    expect(seed).toContain(`local-hostname: ${MACHINE.name}`);
  }, 2_400_000);

  test("the blank machine PXE-boots, restores its disk, reports done, then boots Debian from it with its hostname", () => {
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", DISK, "5G"]);
    const xml = path.join(workspace.dir, "domain.xml");
    fs.writeFileSync(xml, domainXml("network"));
    virsh(["define", xml]);
    const started = Date.now();
    virsh(["start", DOMAIN]);
    const stateFile = path.join(STATE_DIR, LAB, "state", MACHINE.mac);
    const report = waitFor("the restore to report", 600_000, () => {
      const state = fs.existsSync(stateFile) ? fs.readFileSync(stateFile, "utf8").trim() : "";
      return state === "done" || state === "failed" ? state : undefined;
    });
    expect({ report, console: report === "done" ? "" : consoleTail() }).toEqual({ report: "done", console: "" });
    const restoredAt = Date.now();
    // OVMF here offers no boot option for a disk that was blank at power-on, even after the
    // iPXE script answers "exit" for a deployed MAC: switch this VM to boot from its disk.
    virsh(["destroy", DOMAIN]);
    fs.writeFileSync(xml, domainXml("disk"));
    virsh(["define", xml]);
    virsh(["start", DOMAIN]);
    waitFor("the guest agent of the restored system", 600_000, () =>
      quiet("virsh", ["-c", "qemu:///system", "qemu-agent-command", DOMAIN, '{"execute":"guest-ping"}']).status === 0 ? true : undefined
    );
    const status = waitFor("cloud-init to finish", 600_000, () => {
      const result = guestExec(DOMAIN, "/usr/bin/cloud-init", ["status", "--long"]);
      return /status: (done|error)/.test(result.stdout) ? result.stdout : undefined;
    });
    const timings = { restoreMs: restoredAt - started, firstBootMs: Date.now() - restoredAt };
    console.log(`PXE restore: ${Math.round(timings.restoreMs / 1000)} s; first boot to cloud-init done: ${Math.round(timings.firstBootMs / 1000)} s`);
    // `npm run bench` runs this test to time a blank machine from power-on to cloud-init done.
    if (process.env.BTW_BENCH_TIMINGS) fs.writeFileSync(process.env.BTW_BENCH_TIMINGS, JSON.stringify(timings));
    expect(status).toContain("status: done");
    // NoCloud read the seed the restore wrote onto the root file system.
    expect(status).toMatch(/seed=\/var\/lib\/cloud\/seed\/nocloud/);
    expect(guestExec(DOMAIN, "/bin/hostname", []).stdout.trim()).toBe(MACHINE.name);
    expect(guestExec(DOMAIN, "/bin/cat", ["/run/btw-runcmd"]).stdout.trim()).toBe("btw-baremetal-runcmd");
    // The root file system grew to the 5 GiB disk.
    const rootSize = Number(guestExec(DOMAIN, "/bin/df", ["-B1", "--output=size", "/"]).stdout.split("\n")[1].trim());
    expect(rootSize).toBeGreaterThan(4 * 1024 ** 3);
    // The second network boot was sent to the disk instead of restoring again.
    const httpLog = fs.readFileSync(path.join(STATE_DIR, LAB, "httpd.log"), "utf8");
    expect(httpLog.match(/initramfs\.img/g) ?? []).toHaveLength(1);
  }, 1_800_000);

  test("`cdktf destroy baremetal` stops dnsmasq and the HTTP server and removes their files", () => {
    quiet("virsh", ["-c", "qemu:///system", "destroy", DOMAIN]);
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
