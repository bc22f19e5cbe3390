// Proxy DHCP, the default when baremetal.pxe.dhcp_range is not set: the LAN
// already has a DHCP server (here dnsmasq in its own network namespace, wired
// to the test bridge by a veth pair, so nothing leaves this machine) and ours
// only answers PXE requests. A blank UEFI machine must get its address from
// the LAN server and iPXE, the deploy environment and its image from us, and
// restore its disk (with iPXE: beside the LAN's DHCP server Debian's GRUB would ask that
// server for its files, see docs/bare-metal.md). (UEFI only: here the BIOS iPXE ROM ignores the ProxyDHCP
// answer to its port-4011 request; see docs/bare-metal.md, Limits.)
// Then the same Debian 12 lab serves DHCP itself (dhcp_range, the LAN server gone), and a blank
// machine with Secure Boot enforced installs through Debian 12's signed shim and GRUB, which has no
// HTTP: it reads its scripts, kernel and initramfs over TFTP, whatever http_port is (here not 8181).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { guestExec, hostLeftovers, leftovers } from "../../testkit/libvirt";
import { PxeLab, quiet } from "../../testkit/pxe-lab";
import { PxeLabUnderTest } from "../../testkit/pxe-lab-test";

const lab = new PxeLab({
  lab: "bmproxy",
  subnet: "10.213.53",
  stateDir: "/var/lib/btw-img/pxe-test-proxy",
  machines: [
    // It boots alone: two CPUs. (The Secure Boot one keeps one: its firmware's SMM has only been run with one here.)
    { name: "proxy-uefi", mac: "52:54:00:bd:53:01", firmware: "uefi", profile: "minimal", vcpus: 2 },
    { name: "sb12-uefi", mac: "52:54:00:bd:53:02", firmware: "uefi-secure", profile: "minimal" },
  ],
});
const [PROXIED, SECURE] = lab.machines;
const HTTP_PORT = 18182;
const LAN_NS = "btw-bmproxy-lan";
const LAN_SERVER = "10.213.53.2";
const LAN_PID = `/run/${LAN_NS}-dnsmasq.pid`;
const LAN_LEASES = `/run/${LAN_NS}-dnsmasq.leases`;

function stopLanServer(): void {
  if (fs.existsSync(LAN_PID)) quiet("kill", [fs.readFileSync(LAN_PID, "utf8").trim()]);
  quiet("ip", ["netns", "del", LAN_NS]);
  for (const file of [LAN_PID, LAN_LEASES]) fs.rmSync(file, { force: true });
}

/** The LAN's own DHCP server: a namespace on the test bridge, addresses .100-.150, no PXE. */
function startLanServer(): void {
  const ip = (...args: string[]) => execFileSync("ip", args);
  ip("netns", "add", LAN_NS);
  ip("link", "add", "bmproxy-lan", "type", "veth", "peer", "name", "bmproxy-lan-br");
  ip("link", "set", "bmproxy-lan", "netns", LAN_NS);
  ip("link", "set", "bmproxy-lan-br", "master", lab.bridge, "up");
  ip("-n", LAN_NS, "addr", "add", `${LAN_SERVER}/24`, "dev", "bmproxy-lan");
  ip("-n", LAN_NS, "link", "set", "bmproxy-lan", "up");
  execFileSync("ip", [
    "netns",
    "exec",
    LAN_NS,
    "dnsmasq",
    "--port=0",
    "--interface=bmproxy-lan",
    "--bind-interfaces",
    "--dhcp-range=10.213.53.100,10.213.53.150,1h",
    `--dhcp-leasefile=${LAN_LEASES}`,
    `--pid-file=${LAN_PID}`,
  ]);
}

describe("proxy DHCP: our server answers only PXE beside the LAN's DHCP server", () => {
  const underTest = new PxeLabUnderTest(lab, "baremetal-proxy-dhcp", { pidFiles: [LAN_PID], netns: [LAN_NS], paths: [LAN_LEASES] });
  const { workspace } = underTest;

  beforeAll(async () => {
    stopLanServer();
    await underTest.start();
    // No dhcpRange: proxy DHCP.
    // Debian 12 here (Debian 13 in baremetal-pxe.test.ts): both releases are restored over PXE.
    const config = lab.labConfig({ labCidr: "10.213.54.0/24", httpPort: HTTP_PORT, release: "bookworm" });
    fs.writeFileSync(workspace.configFile, stringify(config));
    startLanServer();
  }, 1_800_000);

  // The LAN server goes with what the lab holds: its namespace, pid file and leases.
  afterAll(() => underTest.stop(), 900_000);

  test("`cdktf deploy baremetal` starts dnsmasq as proxy DHCP", async () => {
    const run = await underTest.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toHaveLength(1);
    expect(fs.readFileSync(path.join(lab.serverDir, "dnsmasq.conf"), "utf8")).toContain(`dhcp-range=${lab.serverAddress},proxy`);
  }, 2_400_000);

  test("the blank machine gets its address from the LAN server and its image from ours", async () => {
    lab.startMachines(workspace.dir, [PROXIED]);
    const reports = await lab.waitForReports(900_000, [PROXIED]);
    expect(lab.notDone(reports, [PROXIED])).toEqual([]);
    for (const machine of [PROXIED]) {
      // The deploy environment's own DHCP lease came from the LAN's server...
      expect(fs.readFileSync(lab.consoleLog(machine), "utf8")).toMatch(new RegExp(`lease of 10\\.213\\.53\\.1[0-5]\\d obtained from ${LAN_SERVER.replace(/\./g, "\\.")}`));
    }
    // ...which leased the MAC (firmware, iPXE and deploy environment all asked it), while ours leased nothing.
    const lanLeases = fs.readFileSync(LAN_LEASES, "utf8");
    expect(lanLeases).toContain(PROXIED.mac);
    const ourLeases = path.join(lab.serverDir, "dnsmasq.leases");
    expect(fs.existsSync(ourLeases) ? fs.readFileSync(ourLeases, "utf8").trim() : "").toBe("");
    // The firmware's iPXE found our boot script through the proxy replies, then the deploy environment over HTTP.
    const httpLog = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8");
    expect(httpLog.match(/deploy\/minimal\/initramfs\.img/g) ?? []).toHaveLength(1);
  }, 1_800_000);

  test("the restored Debian 12 system boots from its disk to cloud-init done", async () => {
    const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (machine) => lab.cloudInitStatus(machine), [PROXIED]);
    for (const machine of [PROXIED]) {
      expect(statuses.get(machine)!.value).toContain("status: done");
      expect(guestExec(lab.domain(machine), "/bin/cat", ["/etc/os-release"]).stdout).toMatch(/^VERSION_CODENAME=bookworm$/m);
      expect(guestExec(lab.domain(machine), "/bin/hostname", []).stdout.trim()).toBe(machine.name);
    }
  }, 1_800_000);

  test("with dhcp_range, a blank Secure Boot machine installs Debian 12 through its signed shim and GRUB over TFTP", async () => {
    stopLanServer();
    fs.writeFileSync(workspace.configFile, stringify(lab.labConfig({ labCidr: "10.213.54.0/24", httpPort: HTTP_PORT, dhcpRange: "10.213.53.100,10.213.53.150", release: "bookworm" })));
    const run = await underTest.deploy(1_200_000);
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    const conf = fs.readFileSync(path.join(lab.serverDir, "dnsmasq.conf"), "utf8");
    expect(conf).toContain("dhcp-boot=tag:!ipxe,tag:efi64,shimx64.efi\n");
    expect(conf).toContain("tftp-unique-root=mac\n");
    // The machine installed in proxy mode stays installed.
    expect(lab.record(PROXIED)).toBe("done");

    lab.startMachines(workspace.dir, [SECURE]);
    const reports = await lab.waitForReports(1_200_000, [SECURE]);
    expect(lab.notDone(reports, [SECURE])).toEqual([]);
    // GRUB read its deploy script and the deploy environment's kernel and initramfs over TFTP, once; nothing by HTTP but tools.img.
    expect(lab.tftpSent(SECURE, "grub/deploy.cfg")).toBe(1);
    expect(lab.tftpSent(SECURE, "initramfs.img")).toBe(1);
    const httpLog = fs.readFileSync(path.join(lab.serverDir, "httpd.log"), "utf8");
    expect(httpLog).not.toContain("initramfs.img");
    expect(httpLog).toContain("deploy/minimal/tools.img");
    const console = fs.readFileSync(lab.consoleLog(SECURE), "utf8");
    expect(console).toContain(`btw-img: deploying ${SECURE.name} (minimal)`);
    expect(console).toContain("Secure Boot is on: the restored system starts through the firmware (no kexec)");

    const statuses = await lab.waitForAll("cloud-init to finish in the restored Secure Boot system", 1_500_000, (machine) => lab.cloudInitStatus(machine), [SECURE]);
    expect(statuses.get(SECURE)!.value).toContain("status: done");
    const domain = lab.domain(SECURE);
    expect(guestExec(domain, "/bin/cat", ["/etc/os-release"]).stdout).toMatch(/^VERSION_CODENAME=bookworm$/m);
    expect(guestExec(domain, "/bin/hostname", []).stdout.trim()).toBe(SECURE.name);
    // The firmware's SecureBoot variable (its last byte) as the restored system sees it.
    const secureBoot = guestExec(domain, "/bin/sh", ["-c", "od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | awk '{ print $NF }'"]);
    expect(secureBoot.stdout.trim()).toBe("1");
  }, 3_000_000);

  test("`cdktf destroy baremetal` stops our dnsmasq and leaves nothing", async () => {
    lab.stopMachines();
    const run = await underTest.destroy();
    expect(run.status).toBe(0);
    expect(lab.dnsmasqPids()).toEqual([]);
    expect(fs.existsSync(lab.serverDir)).toBe(false);
    stopLanServer();
    lab.cleanup();
    expect(leftovers(lab.prefix)).toEqual([]);
    expect(hostLeftovers(workspace.dir, lab.serverDir)).toEqual([]);
    expect(quiet("ip", ["netns", "list"]).stdout).not.toContain(LAN_NS);
  }, 900_000);
});
