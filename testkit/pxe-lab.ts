// The pieces of a bare-metal PXE run (a test's or the benchmark's): an
// isolated libvirt network without libvirt's DHCP (our dnsmasq, or a stand-in
// LAN server, serves it), blank machines that boot network first, then disk,
// and a cleanup that removes all of it even after a failure.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Firmware, OVMF_FILES } from "../lib/config/config";
import { fixtureImage } from "./fixture-image";
import { testLab } from "./lab-yaml";
import { Held, releaseHeld } from "./held";
import { guestExec, virsh } from "./libvirt";

export type { Firmware };

export interface PxeMachine {
  name: string;
  mac: string;
  firmware: Firmware;
  profile: string;
  /** The disk's virtio serial: the config then names the disk /dev/disk/by-id/virtio-<serial>. */
  diskSerial?: string;
  wipe?: boolean;
  /** Disk layout (docs/layouts.md); with one beyond single the machine gets `disks` disks. */
  layout?: "single" | "raid1" | "zfs" | "zfs-mirror";
  /** How many blank disks (default 1); with a layout they are named by serial (virtio-<name>-dN), in order. */
  disks?: number;
  /**
   * UEFI only: false leaves out the NIC's option ROM (QEMU's is iPXE), so the firmware's own
   * PXE boots first, as on PCs. By default the ROM is there and iPXE hands UEFI machines back.
   * (Debian's Secure Boot OVMF offered no network boot without it: keep it for uefi-secure.)
   */
  optionRom?: boolean;
  /**
   * Its CPUs (default 1). Two where it boots alone: emulated, one machine with two boots in about 0.7
   * of the time, but two machines with two each are slower than with one each (on this 2-core host).
   */
  vcpus?: number;
}

export interface PxeLabOptions {
  /** Lab name: libvirt objects are btw-<lab>-*, the server's files <stateDir>/<lab>. */
  lab: string;
  /** First three octets of the test network, e.g. "10.213.50": the host is .1. */
  subnet: string;
  stateDir: string;
  machines: PxeMachine[];
}

export interface BootTiming {
  restoreMs: number;
  firstBootMs: number;
}

export const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });

export class PxeLab {
  readonly prefix: string;
  readonly network: string;
  readonly bridge: string;
  readonly serverAddress: string;

  constructor(readonly options: PxeLabOptions) {
    this.prefix = `btw-${options.lab}`;
    this.network = `${this.prefix}-net`;
    this.bridge = `virbr-${options.lab}`.slice(0, 15);
    this.serverAddress = `${options.subnet}.1`;
  }

  get machines(): PxeMachine[] {
    return this.options.machines;
  }

  domain(machine: PxeMachine): string {
    return `${this.prefix}-${machine.name}`;
  }

  disk(machine: PxeMachine): string {
    return `/var/lib/libvirt/images/${this.domain(machine)}.qcow2`;
  }

  /** Every disk of the machine, the first one first (disk(machine)). */
  disks(machine: PxeMachine): string[] {
    const count = machine.disks ?? 1;
    return Array.from({ length: count }, (_, i) => (i === 0 ? this.disk(machine) : `/var/lib/libvirt/images/${this.domain(machine)}-d${i + 1}.qcow2`));
  }

  /** The virtio serial of the machine's disk number `index` (from 0), when it has several or a layout. */
  diskSerial(machine: PxeMachine, index: number): string | undefined {
    if (index === 0 && machine.diskSerial) return machine.diskSerial;
    return machine.layout || (machine.disks ?? 1) > 1 ? `${machine.name}-d${index + 1}` : undefined;
  }

  consoleLog(machine: PxeMachine): string {
    return `/var/log/libvirt/qemu/${this.domain(machine)}-console.log`;
  }

  /** The server's folder for this lab (pxe-server.sh --state-dir). */
  get serverDir(): string {
    return path.join(this.options.stateDir, this.options.lab);
  }

  /** Where the server records what each machine reported; no stop removes it. */
  get recordsDir(): string {
    return `${this.serverDir}.records`;
  }

  /** The machine's last report (started, done, failed), or "" when none. */
  record(machine: PxeMachine): string {
    const file = path.join(this.recordsDir, machine.mac);
    return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
  }

  /** The machine's own TFTP folder, where GRUB reads its scripts and the deploy kernel (dnsmasq's unique root by MAC). */
  tftpFolder(machine: PxeMachine): string {
    return path.join(this.serverDir, "tftp", machine.mac.replace(/:/g, "-"));
  }

  /** How often dnsmasq sent the machine a file of its own TFTP folder (e.g. "grub/deploy.cfg") since the server last started. */
  tftpSent(machine: PxeMachine, file: string): number {
    const log = path.join(this.serverDir, "dnsmasq.log");
    if (!fs.existsSync(log)) return 0;
    const sent = `sent ${path.join(this.tftpFolder(machine), file)} to `;
    return fs
      .readFileSync(log, "utf8")
      .split("\n")
      .filter((line) => line.includes(sent)).length;
  }

  /** The token the machine's boot script carries while it is not installed. */
  token(machine: PxeMachine): string {
    return fs.readFileSync(path.join(this.recordsDir, `${machine.mac}.token`), "utf8").trim();
  }

  /**
   * The lab config of the test: Debian's real image by file:// URL (its cache key then
   * stays the same between runs), an unused lab network, and our machines behind the
   * PXE server on this network (proxy DHCP unless dhcp_range is given).
   */
  labConfig(options: {
    labCidr: string;
    httpPort: number;
    dhcpRange?: string;
    release?: "trixie" | "bookworm";
    userData?: (machine: PxeMachine) => unknown;
    /** A profiles folder other than the shipped one (profiles_dir). */
    profilesDir?: string;
    /** baremetal.pxe.state_dir other than the lab's (a moved server). */
    stateDir?: string;
    /** The machines of the config (default: all of the lab's). */
    machines?: PxeMachine[];
    /** A machine's bmc key (testkit/bmc-machines.ts), if it has one. */
    bmc?: (machine: PxeMachine) => Record<string, unknown> | undefined;
  }): Record<string, unknown> {
    const release = options.release ?? "trixie";
    const fixture = fixtureImage(release);
    return testLab({
      name: this.options.lab,
      release,
      vms: [{ name: "unused" }],
      extra: {
        image: { url: `file://${fixture.dir}/${fixture.archiveName}`, checksums: `file://${fixture.dir}/SHA512SUMS` },
        ...(options.profilesDir ? { profiles_dir: options.profilesDir } : {}),
        network: { name: `${this.options.lab}-lab-net`, mode: "isolated", cidr: options.labCidr },
        baremetal: {
          pxe: {
            interface: this.bridge,
            address: this.serverAddress,
            ...(options.dhcpRange ? { dhcp_range: options.dhcpRange } : {}),
            http_port: options.httpPort,
            state_dir: options.stateDir ?? this.options.stateDir,
          },
          machines: (options.machines ?? this.machines).map((machine) => ({
            name: machine.name,
            mac: machine.mac,
            profile: machine.profile,
            ...(machine.layout
              ? { layout: machine.layout, disks: this.disks(machine).map((_, i) => `/dev/disk/by-id/virtio-${this.diskSerial(machine, i)}`) }
              : machine.diskSerial
                ? { disk: `/dev/disk/by-id/virtio-${machine.diskSerial}` }
                : {}),
            ...(machine.wipe ? { wipe: true } : {}),
            ...(options.userData ? { user_data: options.userData(machine) } : {}),
            ...(options.bmc?.(machine) ? { bmc: options.bmc(machine) } : {}),
          })),
        },
      },
    });
  }

  /** The machines whose deploy environment did not report done, each with its report and console: none when all did. */
  notDone(reports: Map<PxeMachine, { value: string }>, machines: PxeMachine[] = this.machines): { machine: string; report: string; console: string }[] {
    return machines
      .filter((machine) => reports.get(machine)?.value !== "done")
      .map((machine) => ({ machine: machine.name, report: reports.get(machine)?.value ?? "(none)", console: this.consoleTail(machine) }));
  }

  /** Isolated (no <forward>), and without libvirt's own DHCP and DNS. */
  createNetwork(workDir: string): void {
    const xml = path.join(workDir, "net.xml");
    fs.writeFileSync(xml, `<network><name>${this.network}</name><bridge name='${this.bridge}'/><dns enable='no'/><ip address='${this.serverAddress}' netmask='255.255.255.0'/></network>`);
    virsh(["net-define", xml]);
    virsh(["net-start", this.network]);
  }

  /** Blank 5 GiB disks; boot order per device, network first, then the disks in order: firmware follows only these. */
  startMachines(workDir: string, machines: PxeMachine[] = this.machines): number {
    const started = Date.now();
    for (const machine of machines) {
      this.defineMachine(workDir, machine);
      virsh(["start", this.domain(machine)]);
    }
    return started;
  }

  /**
   * The machine with blank 5 GiB disks, defined and off; boot order network first, or with
   * diskFirst its disks first (as a machine its BMC boots from the network once). Returns the
   * domain's XML files: as defined, and network first (the one a one-time network boot starts).
   */
  defineMachine(workDir: string, machine: PxeMachine, diskFirst = false): { defined: string; networkFirst: string } {
    for (const disk of this.disks(machine)) execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", disk, "5G"]);
    const files = { defined: path.join(workDir, `${machine.name}.xml`), networkFirst: path.join(workDir, `${machine.name}-network-first.xml`) };
    fs.writeFileSync(files.defined, this.domainXml(machine, diskFirst));
    fs.writeFileSync(files.networkFirst, this.domainXml(machine, false));
    virsh(["define", files.defined]);
    return files;
  }

  private domainXml(machine: PxeMachine, diskFirst = false): string {
    // uefi-secure: Secure Boot enforced with Microsoft's keys, as PCs ship; its OVMF needs SMM.
    const secure = machine.firmware === "uefi-secure";
    const firmware =
      machine.firmware === "bios"
        ? ""
        : `<loader readonly='yes' type='pflash'${secure ? " secure='yes'" : ""}>${OVMF_FILES[machine.firmware].code}</loader>
    <nvram template='${OVMF_FILES[machine.firmware].vars}'/>`;
    // One UUID for both of its definitions, so a BMC's one-time network boot can define the other over it.
    const uuid = crypto
      .createHash("sha256")
      .update(this.domain(machine))
      .digest("hex")
      .slice(0, 32)
      .replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
    return `<domain type='qemu'>
  <name>${this.domain(machine)}</name>
  <uuid>${uuid}</uuid>
  <memory unit='MiB'>1536</memory>
  <vcpu>${machine.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    ${firmware}
  </os>
  <features><acpi/><apic/>${secure ? "<smm state='on'/>" : ""}</features>
  <devices>
    ${this.disks(machine)
      .map((disk, i) => {
        const serial = this.diskSerial(machine, i);
        return `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vd${String.fromCharCode(97 + i)}' bus='virtio'/>${serial ? `<serial>${serial}</serial>` : ""}<boot order='${diskFirst ? i + 1 : i + 2}'/></disk>`;
      })
      .join("\n    ")}
    <interface type='network'><source network='${this.network}'/><mac address='${machine.mac}'/><model type='virtio'/>${machine.optionRom === false && machine.firmware !== "bios" ? "<rom enabled='no'/>" : ""}<boot order='${diskFirst ? this.disks(machine).length + 1 : 1}'/></interface>
    <serial type='pty'><log file='${this.consoleLog(machine)}' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <!-- A display adapter, as PCs have: Debian's GRUB draws on gfxterm, which hangs a BIOS machine without one. -->
    <video><model type='vga'/></video>
  </devices>
</domain>`;
  }

  /** The deploy environment's progress lines on the console (stamped with seconds since its kernel started). */
  deployProgress(machine: PxeMachine): string[] {
    const log = this.consoleLog(machine);
    if (!fs.existsSync(log)) return [];
    return fs
      .readFileSync(log, "utf8")
      .split(/\r?\n/)
      .filter((line) => /^btw-deploy \[|^restore: restored /.test(line));
  }

  consoleTail(machine: PxeMachine): string {
    const log = this.consoleLog(machine);
    const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").slice(-40).join("\n") : "(no console log)";
    return `console of ${machine.name}:\n${tail}`;
  }

  /** Polls each machine (default: all) until probe gives a value for each; returns the values and when each came. */
  async waitForAll<T>(what: string, timeoutMs: number, probe: (machine: PxeMachine) => T | undefined, machines: PxeMachine[] = this.machines): Promise<Map<PxeMachine, { value: T; at: number }>> {
    const results = new Map<PxeMachine, { value: T; at: number }>();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const machine of machines.filter((m) => !results.has(m))) {
        const value = probe(machine);
        if (value !== undefined) results.set(machine, { value, at: Date.now() });
      }
      if (results.size === machines.length) return results;
      if (Date.now() > deadline) {
        const missing = machines.filter((m) => !results.has(m));
        throw new Error(`timed out waiting for ${what} on ${missing.map((m) => m.name).join(", ")}\n${missing.map((m) => this.consoleTail(m)).join("\n")}`);
      }
      // Waits without blocking jest, so an interrupted run can still release what tests hold.
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }

  /**
   * Per kind of machine ("uefi minimal"): from power-on (startMachines) to its restore's
   * report, and from that report to cloud-init done in the restored system.
   */
  bootTimings(started: number, reports: Map<PxeMachine, { at: number }>, cloudInitDone: Map<PxeMachine, { at: number }>, machines: PxeMachine[] = this.machines): Record<string, BootTiming> {
    return Object.fromEntries(
      machines.map((machine) => {
        const restoredAt = reports.get(machine)!.at;
        return [`${machine.firmware} ${machine.profile}`, { restoreMs: restoredAt - started, firstBootMs: cloudInitDone.get(machine)!.at - restoredAt }];
      }),
    );
  }

  /** What the deploy environment reported for each machine: done, failed or kept. */
  waitForReports(timeoutMs: number, machines: PxeMachine[] = this.machines): Promise<Map<PxeMachine, { value: string; at: number }>> {
    return this.waitForAll(
      "the restore to report",
      timeoutMs,
      (machine) => {
        const state = this.record(machine);
        return state === "done" || state === "failed" || state === "kept" ? state : undefined;
      },
      machines,
    );
  }

  /** cloud-init's long status once it finished in the machine (done or error), asked through the guest agent; undefined before. */
  cloudInitStatus(machine: PxeMachine): string | undefined {
    if (quiet("virsh", ["-c", "qemu:///system", "qemu-agent-command", this.domain(machine), '{"execute":"guest-ping"}']).status !== 0) return undefined;
    const result = guestExec(this.domain(machine), "/usr/bin/cloud-init", ["status", "--long"]);
    return /status: (done|error)/.test(result.stdout) ? result.stdout : undefined;
  }

  dnsmasqPids(): string[] {
    return quiet("pgrep", ["-f", `dnsmasq --conf-file=${this.serverDir}`])
      .stdout.split("\n")
      .filter(Boolean);
  }

  /** Power off and on: the firmware boots network first, as at every real reboot. */
  powerCycle(machine: PxeMachine): void {
    quiet("virsh", ["-c", "qemu:///system", "destroy", this.domain(machine)]);
    virsh(["start", this.domain(machine)]);
  }

  stopMachines(machines: PxeMachine[] = this.machines): void {
    for (const machine of machines) quiet("virsh", ["-c", "qemu:///system", "destroy", this.domain(machine)]);
  }

  /** What the lab holds, for held.ts: its libvirt objects, its PXE server, the machines' disks and logs. */
  held(): Held {
    const machineFiles = this.machines.flatMap((machine) => [...this.disks(machine), this.consoleLog(machine), `/var/log/libvirt/qemu/${this.domain(machine)}.log`]);
    return { libvirtPrefixes: [this.prefix], pxeStateDirs: [this.serverDir], paths: [this.options.stateDir, ...machineFiles] };
  }

  /** Removes machines, disks, logs, the network and the server, whatever state they are in. */
  cleanup(): void {
    releaseHeld(this.held());
    // Its parent (/var/lib/btw-img) too, when no other server keeps files there.
    try {
      fs.rmdirSync(path.dirname(this.options.stateDir));
    } catch {
      // not empty, or already gone
    }
  }
}
