// The machine of pxe-server.sh's integration tests, without any VM: a network
// namespace behind a veth pair, with the machine's MAC, on a subnet of the test
// file's own; a stand-in deploy environment and capture; pxe-server.sh started
// for two machines (m1 is the namespace's MAC). Needs root, dnsmasq and iPXE.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "./metal-scripts";

/**
 * The namespace machine and the server's helpers for a test file, set up in its beforeAll and
 * removed in its afterAll. TAG: a letter of the file's own (interface names); SUBNET: 10.213.SUBNET.0/24,
 * also the MACs' fourth byte; PORT: the server's HTTP port; WORK: the file's working folder.
 */
export function namespaceMachine(work: string, tag: string, subnet: number, port: string) {
  // The "machine" is a network namespace behind a veth pair, with the machine's MAC.
  const suffix = `${tag}${process.pid % 100000}`;
  const ns = `btw-pxeu-${suffix}`;
  const hostIf = `btwpu${suffix}`;
  const address = `10.213.${subnet}.1`;
  const base = `http://${address}:${port}`;
  const m1 = { name: "m1", mac: `52:54:00:${subnet}:00:01` };
  const m2 = { name: "m2", mac: `52:54:00:${subnet}:00:02` };
  // dnsmasq serves TFTP as an unprivileged user, who must reach tftp/ (work is root's alone).
  const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "btw-pxe-unit-"));
  const stateDir = path.join(stateRoot, "lab");
  const recordsDir = `${stateDir}.records`;
  const deployDir = path.join(work, "deploy");
  const artifactsDir = path.join(work, "artifacts");
  const machines = (list: { name: string; mac: string }[]) =>
    JSON.stringify(list.map((m) => ({ ...m, profile: "minimal", wipe: true, user_data: `#cloud-config\n# secret-of-${m.name}\n`, meta_data: `instance-id: ${m.name}\n` })));
  /** pxe-server.sh start for the machines of LIST, with the deploy environment in DEPLOY. */
  const start = (list = [m1, m2], extra: string[] = [], deploy = deployDir) => {
    const options = {
      "--state-dir": stateDir,
      "--interface": hostIf,
      "--address": address,
      "--dhcp-range": `10.213.${subnet}.100,10.213.${subnet}.150`,
      "--http-port": port,
      "--deploy": `minimal=${deploy}`,
      "--artifacts": `minimal=${artifactsDir}`,
    };
    return run("pxe-server.sh", ["start", ...Object.entries(options).flat(), ...extra], { PXE_MACHINES: machines(list) });
  };
  /** curl from the machine's side (inNs) or from the host itself; returns status code and body. */
  const fetch = (url: string, inNs = true) => {
    const args = ["-s", "-w", "\n%{http_code}", url];
    const out = inNs ? execFileSync("ip", ["netns", "exec", ns, "curl", ...args], { encoding: "utf8" }) : execFileSync("curl", args, { encoding: "utf8" });
    const lines = out.split("\n");
    return { code: Number(lines.pop()), body: lines.join("\n") };
  };
  const token = (mac: string) => fs.readFileSync(path.join(recordsDir, `${mac}.token`), "utf8").trim();
  const record = (mac: string) => (fs.existsSync(path.join(recordsDir, mac)) ? fs.readFileSync(path.join(recordsDir, mac), "utf8").trim() : "");
  const hyphens = (mac: string) => mac.replace(/:/g, "-");
  /** The token in a token archive (cpio: etc/btw-token), as the deploy kernel unpacks it. */
  const archivedToken = (archive: Buffer) => execFileSync("cpio", ["-i", "--quiet", "--to-stdout", "etc/btw-token"], { input: archive, encoding: "utf8" }).trim();
  /**
   * The token archive of the machine's iPXE initrd (cgi-bin/initrd: the deploy initramfs, zero bytes to a 4-byte
   * boundary, the archive), from the machine's side (the namespace, with its MAC) or from the host; empty when refused.
   */
  const tokenArchive = (mac: string, inNs = true) => {
    const args = ["-s", "-f", `${base}/cgi-bin/initrd?mac=${hyphens(mac)}`];
    const body = inNs ? execFileSync("sh", ["-c", '"$@" || true', "sh", "ip", "netns", "exec", ns, "curl", ...args]) : execFileSync("sh", ["-c", '"$@" || true', "sh", "curl", ...args]);
    if (body.length === 0) return body;
    const initramfs = fs.readFileSync(path.join(deployDir, "initramfs.img"));
    const start = initramfs.length + ((4 - (initramfs.length % 4)) % 4);
    expect(body.subarray(0, initramfs.length).equals(initramfs)).toBe(true);
    expect(body.subarray(initramfs.length, start).every((byte) => byte === 0)).toBe(true);
    return body.subarray(start);
  };

  beforeAll(() => {
    fs.chmodSync(stateRoot, 0o755);
    const sh = (command: string) => execFileSync("sh", ["-c", command]);
    sh(`ip link add ${hostIf} type veth peer name ${hostIf}c && ip netns add ${ns} && ip link set ${hostIf}c netns ${ns}`);
    sh(`ip addr add ${address}/24 dev ${hostIf} && ip link set ${hostIf} up`);
    sh(`ip netns exec ${ns} sh -c 'ip link set ${hostIf}c address ${m1.mac} && ip addr add 10.213.${subnet}.2/24 dev ${hostIf}c && ip link set ${hostIf}c up'`);
    fs.mkdirSync(deployDir);
    fs.writeFileSync(path.join(deployDir, "vmlinuz"), "");
    // Not a multiple of 4 bytes: the token archive after it starts at the next boundary.
    fs.writeFileSync(path.join(deployDir, "initramfs.img"), "initramfs");
    fs.writeFileSync(path.join(deployDir, "tools.img"), "stand-in for tools");
    fs.mkdirSync(artifactsDir);
    fs.writeFileSync(path.join(artifactsDir, "manifest.json"), '{"format_version": 1}');
  });

  afterAll(() => {
    run("pxe-server.sh", ["stop", "--state-dir", stateDir]);
    spawnSync("ip", ["netns", "del", ns]);
    spawnSync("ip", ["link", "del", hostIf]);
    fs.rmSync(stateRoot, { recursive: true, force: true });
  });

  return { ns, hostIf, address, port, base, m1, m2, stateRoot, stateDir, recordsDir, deployDir, artifactsDir, machines, start, fetch, token, record, hyphens, archivedToken, tokenArchive };
}
