// pxe-server.sh without any VM: a veth pair whose far end (a network namespace)
// plays the machine: one install per machine, seeds and reports only with its
// token from its address, records that survive, release and reinstall, the
// deploy environment's report client (btw-report) under busybox.
// Needs root (network namespaces), dnsmasq and iPXE, as CI has.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BUSYBOX, busyboxPath, modes, run, scriptPath, workDir } from "../helpers/metal-scripts";

const work = workDir();

describe("pxe-server.sh: one install per machine, seeds only for it", () => {
  // The "machine" is a network namespace behind a veth pair, with the machine's MAC.
  const suffix = String(process.pid % 100000);
  const ns = `btw-pxeu-${suffix}`;
  const hostIf = `btwpu${suffix}`;
  const address = "10.213.97.1";
  const port = "18197";
  const base = `http://${address}:${port}`;
  const m1 = { name: "m1", mac: "52:54:00:97:00:01" };
  const m2 = { name: "m2", mac: "52:54:00:97:00:02" };
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
      "--dhcp-range": "10.213.97.100,10.213.97.150",
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
    sh(`ip netns exec ${ns} sh -c 'ip link set ${hostIf}c address ${m1.mac} && ip addr add 10.213.97.2/24 dev ${hostIf}c && ip link set ${hostIf}c up'`);
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

  test("the boot script with the token goes only to the machine's MAC; the seed only under the token; files are root's alone", () => {
    const started = start();
    expect(started.output).not.toMatch(/error/);
    expect(started.status).toBe(0);
    // From the host (not the machine's address): the script that sends it to its disk.
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`, false).body.trim()).toBe("#!ipxe\necho btw-img: m1 boots from its disk\nexit 1");
    // From the namespace with m1's MAC: m1's deploy script, not m2's.
    const script = fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body;
    // No token in it: the kernel gets it in an archive beside the initramfs, which only m1 gets.
    expect(script).not.toContain(token(m1.mac));
    expect(script).toContain(`initrd --name initramfs.img ${base}/cgi-bin/initrd?mac=\${mac:hexhyp}`);
    expect(script).toMatch(/^kernel \S+\/deploy\/minimal\/vmlinuz initrd=initramfs\.img /m);
    expect(script).toContain(` btw.seed=${base}/cgi-bin/seed `);
    // What the deploy environment fetches is checked against the boot script: the manifest and the seed.
    const sha256 = (data: string | Buffer) => crypto.createHash("sha256").update(data).digest("hex");
    expect(script).toContain(` btw.manifest_sha256=${sha256(fs.readFileSync(path.join(artifactsDir, "manifest.json")))} `);
    const seedList = ["user-data", "meta-data"].map((name) => `${sha256(fs.readFileSync(path.join(stateDir, "machines", m1.mac, name)))}  ${name}\n`).join("");
    expect(script).toContain(` btw.seed_sha256=${sha256(seedList)} `);
    expect(archivedToken(tokenArchive(m1.mac))).toBe(token(m1.mac));
    expect(tokenArchive(m1.mac, false).length).toBe(0);
    expect(tokenArchive(m2.mac).length).toBe(0);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m2.mac)}`).body).toContain("m2 boots from its disk");
    expect(token(m1.mac)).toMatch(/^[0-9a-f]{32}$/);
    expect(token(m1.mac)).not.toBe(token(m2.mac));
    // No seed by MAC, by another machine's token or to another address; with its token, to its address, the seed.
    expect(fetch(`${base}/cgi-bin/seed/${m1.mac}/user-data`).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/seed/${token(m2.mac)}/user-data`).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/user-data`, false).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/../name`).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/user-data`).body).toContain("secret-of-m1");
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/meta-data`).body).toContain("instance-id: m1");
    // Nothing the server wrote is readable by others, except the iPXE binaries TFTP serves
    // (and the files dnsmasq writes itself: pid, leases, log).
    for (const [file, mode] of [...modes(stateDir), ...modes(recordsDir)]) {
      const open = file === stateDir || file.startsWith(path.join(stateDir, "tftp")) || path.basename(file).startsWith("dnsmasq.");
      if (!open) expect({ file, mode: mode & 0o077 }).toEqual({ file, mode: 0 });
      if (fs.statSync(file).isFile() && fs.readFileSync(file, "utf8").includes("secret-of-")) expect({ file, mode }).toEqual({ file, mode: 0o600 });
    }
    expect(fs.statSync(path.join(stateDir, "machines", m1.mac, "token.cpio")).mode & 0o777).toBe(0o600);
    // The daemons (and so the CGI) do not carry the machines' data the start was given.
    for (const daemon of ["dnsmasq", "httpd"]) {
      const pid = fs.readFileSync(path.join(stateDir, `${daemon}.pid`), "utf8").trim();
      expect([daemon, fs.readFileSync(`/proc/${pid}/environ`, "utf8").includes("PXE_MACHINES=")]).toEqual([daemon, false]);
    }
    expect(fs.statSync(recordsDir).mode & 0o777).toBe(0o700);
  });

  test("DHCP answers only the machines of the config: an address for m1's MAC, none for a stranger on the bridge", () => {
    const conf = fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8");
    expect(conf).toContain(`dhcp-host=${m1.mac}\ndhcp-host=${m2.mac}\ndhcp-ignore=tag:!known`);
    // busybox's udhcpc from the namespace (answers broadcast, -B: the namespace has its own address already).
    const dhcp = () => spawnSync("ip", ["netns", "exec", ns, "busybox", "udhcpc", "-B", "-i", `${hostIf}c`, "-n", "-q", "-t", "3", "-T", "1", "-s", "/bin/true"], { encoding: "utf8" });
    const known = dhcp();
    expect({ status: known.status, output: known.stdout + known.stderr }).toMatchObject({ status: 0, output: expect.stringMatching(/lease of 10\.213\.97\.1[0-5]\d obtained/) });
    execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", `${hostIf}c`, "address", "52:54:00:97:00:99"]);
    try {
      expect(dhcp().status).not.toBe(0);
      expect(fs.readFileSync(path.join(stateDir, "dnsmasq.log"), "utf8")).toMatch(/52:54:00:97:00:99 ignored/);
    } finally {
      execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", `${hostIf}c`, "address", m1.mac]);
    }
  }, 60_000);

  test("btw-report from the machine: states with percent and note become its log; its inventory is kept; bad ones are refused", () => {
    // The deploy environment's client under busybox alone, from the machine's namespace.
    const applets = busyboxPath(path.join(work, "report-bin"));
    const busybox = BUSYBOX;
    fs.writeFileSync(path.join(work, "btw-report.conf"), `server='${base}'\nmac='${m1.mac}'\n`);
    fs.writeFileSync(path.join(work, "btw-token"), `${token(m1.mac)}\n`, { mode: 0o600 });
    const ip = execFileSync("sh", ["-c", "command -v ip"], { encoding: "utf8" }).trim();
    const report = (...args: string[]) =>
      spawnSync(ip, ["netns", "exec", ns, busybox, "sh", scriptPath("report.sh"), ...args], {
        encoding: "utf8",
        env: { PATH: applets, BTW_REPORT_CONFIG: path.join(work, "btw-report.conf"), BTW_TOKEN_FILE: path.join(work, "btw-token") },
      });
    expect(report("deploy-env-up").status).toBe(0);
    expect(report("downloading", "40", "p2.ext4.pcl.zst").status).toBe(0);
    expect(report("writing", "75", "vda2 (root); rm -rf $HOME").status).toBe(0);
    expect(record(m1.mac)).toBe("writing");
    const log = fs
      .readFileSync(path.join(recordsDir, `${m1.mac}.log`), "utf8")
      .trim()
      .split("\n");
    expect(log.map((line) => line.split(" ").slice(1).join(" "))).toEqual(["deploy-env-up -", "downloading 40 p2.ext4.pcl.zst", "writing 75 vda2 (root)_ rm -rf _HOME"]);
    expect(log.every((line) => Math.abs(Number(line.split(" ")[0]) - Date.now() / 1000) < 60)).toBe(true);
    expect(fs.statSync(path.join(recordsDir, `${m1.mac}.log`)).mode & 0o077).toBe(0);
    // Inventory: a JSON object, kept as it came; anything else refused.
    const inventory = path.join(work, "inventory.json");
    fs.writeFileSync(inventory, JSON.stringify({ disks: [{ name: "/dev/vda", serial: "s1" }], cpus: 2 }));
    expect(report("--inventory", inventory).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(recordsDir, `${m1.mac}.inventory.json`), "utf8"))).toEqual({ disks: [{ name: "/dev/vda", serial: "s1" }], cpus: 2 });
    fs.writeFileSync(inventory, "not json");
    expect(report("--inventory", inventory).status).toBe(1);
    expect(report("sideways").status).toBe(1);
    expect(record(m1.mac)).toBe("writing");
    // Another token is refused; the status command lists states only.
    fs.writeFileSync(path.join(work, "btw-token"), `${"0".repeat(32)}\n`);
    expect(report("failed").status).toBe(1);
    expect(run("pxe-server.sh", ["status", "--state-dir", stateDir]).output.trim()).toBe(`${m1.mac} writing`);
    // The machine reported nothing else, as far as the tests after this one know.
    for (const suffix of ["", ".log", ".inventory.json"]) fs.rmSync(path.join(recordsDir, `${m1.mac}${suffix}`));
  });

  test("reports need the machine's token and address; at done the seed leaves the server and the MAC boots its disk", () => {
    const m1Token = token(m1.mac);
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&status=done`).code).toBe(403);
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${"0".repeat(32)}&status=done`).code).toBe(403);
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${m1Token}&status=done`, false).code).toBe(403);
    expect(record(m1.mac)).toBe("");
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${m1Token}&status=started`).code).toBe(200);
    expect(record(m1.mac)).toBe("started");
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${m1Token}&status=done`).code).toBe(200);
    expect(record(m1.mac)).toBe("done");
    expect(fetch(`${base}/cgi-bin/seed/${m1Token}/user-data`).code).toBe(404);
    expect(tokenArchive(m1.mac).length).toBe(0);
    expect(fs.existsSync(path.join(stateDir, "machines", m1.mac, "token.cpio"))).toBe(false);
    expect(fs.existsSync(path.join(recordsDir, `${m1.mac}.token`))).toBe(false);
    // The void token cannot mark it failed, and the boot script sends it to its disk.
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${m1Token}&status=failed`).code).toBe(403);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body).toContain("m1 boots from its disk");
  });

  test("done survives a restart and stop; reinstall re-arms it with a new token and a replace; kept is installed too; a machine taken out of the config is forgotten", () => {
    const m2Token = token(m2.mac);
    expect(start().status).toBe(0);
    expect(record(m1.mac)).toBe("done");
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body).toContain("m1 boots from its disk");
    // A machine not yet done keeps its token across restarts (a deploy in progress can still report).
    expect(token(m2.mac)).toBe(m2Token);

    const stopped = run("pxe-server.sh", ["stop", "--state-dir", stateDir]);
    expect(stopped.status).toBe(0);
    expect(fs.existsSync(stateDir)).toBe(false);
    expect(record(m1.mac)).toBe("done");

    expect(start().status).toBe(0);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body).toContain("m1 boots from its disk");
    const reinstall = run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]);
    expect(reinstall.output).toContain("was done: its next network boot restores it");
    expect(record(m1.mac)).toBe("");
    const script = fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body;
    expect(archivedToken(tokenArchive(m1.mac))).toBe(token(m1.mac));
    // The reinstall, and only it, asks the restore to replace the install on the disks, until done.
    expect(script).toMatch(/ btw\.after=kexec btw\.replace=1$/m);
    expect(fs.existsSync(path.join(recordsDir, `${m1.mac}.replace`))).toBe(true);
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/user-data`).body).toContain("secret-of-m1");
    expect(start().status).toBe(0);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body).toContain("btw.replace=1");
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${token(m1.mac)}&status=done`).code).toBe(200);
    expect(fs.existsSync(path.join(recordsDir, `${m1.mac}.replace`))).toBe(false);

    // m2's disks held another install (its records were lost): kept, it boots its disk, as installed.
    execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", `${hostIf}c`, "address", m2.mac]);
    const m2Script = fetch(`${base}/cgi-bin/boot?mac=${hyphens(m2.mac)}`).body;
    expect(m2Script).toContain("deploying m2");
    expect(m2Script).not.toContain("btw.replace");
    const m2Seed = `${base}/cgi-bin/seed/${token(m2.mac)}/user-data`;
    expect(fetch(m2Seed).body).toContain("secret-of-m2");
    expect(fetch(`${base}/cgi-bin/report?mac=${m2.mac}&token=${token(m2.mac)}&status=kept`).code).toBe(200);
    expect(record(m2.mac)).toBe("kept");
    expect(fetch(m2Seed).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m2.mac)}`).body).toContain("m2 boots from its disk");
    expect(run("pxe-server.sh", ["status", "--state-dir", stateDir]).output).toContain(`${m2.mac} kept`);
    const restarted = start();
    expect(restarted.output).toContain(`m2 (${m2.mac}) is installed (kept)`);
    expect(fetch(`${base}/cgi-bin/boot?mac=${hyphens(m2.mac)}`).body).toContain("m2 boots from its disk");
    execFileSync("ip", ["netns", "exec", ns, "ip", "link", "set", `${hostIf}c`, "address", m1.mac]);
    // m1 reinstalled once more: not installed for the tests below.
    expect(run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]).status).toBe(0);

    // m2 leaves the config: its record goes.
    const withoutM2 = start([m1]);
    expect(withoutM2.output).toContain(`forgot ${m2.mac}: no longer in the config`);
    expect(fs.readdirSync(recordsDir).filter((file) => file.startsWith(m2.mac))).toEqual([]);
  });

  test("release: with --erase the next boot erases (btw.erase), the machine reports released and is not served; without, released at once; reinstall serves it again", () => {
    const boot = `${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`;
    const report = (status: string) => fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${token(m1.mac)}&status=${status}`).code;
    const released = run("pxe-server.sh", ["release", "--state-dir", stateDir, "--mac", m1.mac, "--erase", "quick"]);
    expect(released.output).toContain(`${m1.mac} (m1) was no record: its next network boot erases its disks (quick) and powers it off`);
    // The erase, not a reinstall's replace: the mark went.
    expect(fetch(boot).body).toMatch(/ btw\.after=kexec btw\.erase=quick$/m);
    expect(fs.existsSync(path.join(recordsDir, `${m1.mac}.replace`))).toBe(false);
    expect(report("erasing&percent=50")).toBe(200);
    expect(report("released")).toBe(200);
    expect(record(m1.mac)).toBe("released");
    expect(
      fs
        .readdirSync(recordsDir)
        .filter((file) => file.startsWith(`${m1.mac}.`))
        .sort(),
    ).toEqual([`${m1.mac}.log`]);
    expect(fetch(boot).body).toContain("m1 is released (btw metal reinstall installs it)");
    expect(tokenArchive(m1.mac).length).toBe(0);
    // A restart does not serve it either.
    expect(start([m1]).output).toContain(`m1 (${m1.mac}) is released: not served`);
    expect(fetch(boot).body).toContain("m1 is released");
    // A reinstall serves it again, to install (replacing whatever its disks hold).
    expect(run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]).status).toBe(0);
    expect(fetch(boot).body).toMatch(/ btw\.after=kexec btw\.replace=1$/m);
    // Without --erase: released at once, nothing served, no disk written.
    expect(run("pxe-server.sh", ["release", "--state-dir", stateDir, "--mac", m1.mac]).output).toContain(`${m1.mac} was no record: released (its disks as they are)`);
    expect(record(m1.mac)).toBe("released");
    expect(fetch(boot).body).toContain("m1 is released");
    expect(tokenArchive(m1.mac).length).toBe(0);
    expect(run("pxe-server.sh", ["release", "--state-dir", stateDir, "--mac", m1.mac, "--erase", "sideways"]).status).toBe(2);
    // m1 not installed for the tests below.
    expect(run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]).status).toBe(0);
  });

  test("start refuses when something else answers on the HTTP port, and leaves no daemon", async () => {
    const other = spawn("busybox", ["httpd", "-f", "-p", `${address}:18198`, "-h", work], { stdio: "ignore" });
    const otherDir = path.join(stateRoot, "other");
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const refused = run(
        "pxe-server.sh",
        ["start", "--state-dir", otherDir, "--interface", hostIf, "--address", address, "--http-port", "18198", "--deploy", `minimal=${deployDir}`, "--artifacts", `minimal=${artifactsDir}`],
        {
          PXE_MACHINES: machines([m1]),
        },
      );
      expect(refused.status).toBe(1);
      expect(refused.output).toMatch(/something else listens on port 18198 .*busybox/);
      expect(spawnSync("pgrep", ["-f", `dnsmasq --conf-file=${otherDir}`]).status).toBe(1);
    } finally {
      other.kill();
      run("pxe-server.sh", ["stop", "--state-dir", otherDir]);
    }
  });

  test("stop and start never touch a folder without the marker (state_dir / with lab etc)", () => {
    const foreign = path.join(work, "foreign", "etc");
    fs.mkdirSync(foreign, { recursive: true });
    fs.writeFileSync(path.join(foreign, "passwd"), "root:x:0:0\n");
    const stopped = run("pxe-server.sh", ["stop", "--state-dir", foreign]);
    expect(stopped.status).toBe(0);
    expect(stopped.output).toContain("is not btw-img's (no .btw-img-owned in it)");
    const started = run("pxe-server.sh", ["start", "--state-dir", foreign, "--interface", hostIf, "--address", address, "--http-port", "18199", "--deploy", `minimal=${deployDir}`], {
      PXE_MACHINES: machines([m1]),
    });
    expect(started.status).toBe(1);
    expect(started.output).toContain("exists and is not btw-img's");
    expect(fs.readdirSync(foreign)).toEqual(["passwd"]);
  });

  test("stop keeps the installs a server from before the records folder recorded", () => {
    const legacy = path.join(stateRoot, "legacy");
    fs.mkdirSync(path.join(legacy, "state"), { recursive: true });
    fs.writeFileSync(path.join(legacy, "dnsmasq.conf"), "# Written by pxe-server.sh: DHCP and TFTP on br50 only, no DNS.\n");
    fs.writeFileSync(path.join(legacy, "state", m1.mac), "done\n");
    fs.writeFileSync(path.join(legacy, "state", m2.mac), "failed\n");
    expect(run("pxe-server.sh", ["stop", "--state-dir", legacy]).status).toBe(0);
    expect(fs.existsSync(legacy)).toBe(false);
    expect(fs.readdirSync(`${legacy}.records`).sort()).toEqual([".btw-img-owned", m1.mac]);
    expect(fs.readFileSync(path.join(`${legacy}.records`, m1.mac), "utf8")).toBe("done\n");
  });

  test("UEFI machines get the image's signed shim and GRUB over TFTP; GRUB reads its MAC's own folder, in its own language", () => {
    const signed = path.join(work, "deploy-signed");
    fs.mkdirSync(signed);
    fs.writeFileSync(path.join(signed, "vmlinuz"), "stand-in for the kernel");
    fs.writeFileSync(path.join(signed, "initramfs.img"), "stand-in for the initramfs");
    fs.writeFileSync(path.join(signed, "tools.img"), "stand-in for tools");
    fs.writeFileSync(path.join(signed, "shimx64.efi"), "stand-in for shim");
    fs.writeFileSync(path.join(signed, "grubx64.efi"), "stand-in for grub");
    /** GRUB's own parser (grub-common) on a script. */
    const grubSyntax = (script: string) => {
      const file = path.join(work, "check.cfg");
      fs.writeFileSync(file, script);
      return spawnSync("grub-script-check", [file], { encoding: "utf8" }).status;
    };
    /** A file over TFTP, as GRUB asks for it: from the machine's side (m1's MAC) or from the host. */
    const tftp = (file: string, inNs = true) => {
      const args = ["-s", "--max-time", "10", `tftp://${address}/${file}`];
      const got = inNs ? spawnSync("ip", ["netns", "exec", ns, "curl", ...args], { encoding: "utf8" }) : spawnSync("curl", args, { encoding: "utf8" });
      return { status: got.status, body: got.stdout };
    };
    const started = start([m1, m2], [], signed);
    expect(started.output).not.toMatch(/warning|error/);
    expect(started.status).toBe(0);
    const conf = fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8");
    expect(conf).toContain("dhcp-boot=tag:!ipxe,tag:efi64,shimx64.efi\n");
    expect(conf).toContain("tftp-unique-root=mac\n");
    // iPXE on UEFI (a NIC's option ROM, as QEMU's) hands the machine back to its firmware, whose own PXE boots shim.
    expect(fetch(`${base}/boot.ipxe`).body).toContain("iseq ${platform} efi && goto firmware ||");
    // The host learns m1's MAC by its address, as dnsmasq does for a machine without a lease.
    execFileSync("ip", ["netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "2", address]);
    // m1 (not installed) reads its own folder: the loaders, then grub.cfg, which reads deploy.cfg: the deploy kernel and its token archive.
    expect(tftp("shimx64.efi").body).toBe("stand-in for shim");
    expect(tftp("grubx64.efi").body).toBe("stand-in for grub");
    const grubCfg = tftp("grub/grub.cfg").body;
    expect(grubCfg).toContain('source "$prefix/deploy.cfg"\nsource "$prefix/disk.cfg"');
    expect(grubSyntax(grubCfg)).toBe(0);
    const deploy = tftp("grub/deploy.cfg").body;
    expect(deploy).toContain(`linux (tftp,${address})/vmlinuz console=`);
    expect(deploy).not.toContain(token(m1.mac));
    expect(deploy).toContain(`initrd (tftp,${address})/initramfs.img (tftp,${address})/token.img\n`);
    expect(tftp("token.img").body).toContain(token(m1.mac));
    expect(tftp("vmlinuz").body).toBe("stand-in for the kernel");
    expect(tftp("initramfs.img").body).toBe("stand-in for the initramfs");
    // The rest of the deploy environment comes over Linux's own network, checked against its sha256.
    const toolsSha = crypto.createHash("sha256").update("stand-in for tools").digest("hex");
    expect(deploy).toContain(` btw.tools=${base}/deploy/minimal/tools.img btw.tools_sha256=${toolsSha} `);
    expect(deploy).not.toContain("ipxe");
    expect(grubSyntax(deploy)).toBe(0);
    // The deploy script and the token are dnsmasq's user's alone on the host, and TFTP gives them to no other address.
    const m1Folder = path.join(stateDir, "tftp", hyphens(m1.mac));
    for (const file of ["grub/deploy.cfg", "token.img"]) {
      const stat = fs.statSync(path.join(m1Folder, file));
      expect({ file, mode: stat.mode & 0o777, owner: stat.uid }).toEqual({ file, mode: 0o400, owner: Number(execFileSync("id", ["-u", "dnsmasq"], { encoding: "utf8" })) });
      expect(tftp(file, false).body).toBe("");
    }
    // Without deploy.cfg (once installed) GRUB goes on to disk.cfg: its disk's own shim, chainloaded at once.
    const disk = fs.readFileSync(path.join(stateDir, "tftp", hyphens(m2.mac), "grub", "disk.cfg"), "utf8");
    expect(disk).toContain("btw-img: m2 boots from its disk");
    expect(disk).toMatch(/for loader in \/EFI\/debian\/shimx64\.efi \/EFI\/BOOT\/BOOTX64\.EFI; do/);
    expect(disk).toContain("search --no-floppy --set=root --file $loader; then chainloader $loader; boot; fi");
    expect(grubSyntax(disk)).toBe(0);
    // A MAC the server does not know (here the host's own) reads tftp/ itself: back to its firmware, booted by nothing of ours.
    const unknown = tftp("grub/grub.cfg", false).body;
    expect(unknown).toContain("is not a machine of this server");
    expect(unknown).not.toMatch(/chainloader|linux|source/);
    expect(grubSyntax(unknown)).toBe(0);
    expect(fetch(`${base}/cgi-bin/boot?mac=52-54-00-97-00-99`).body.trim()).toBe("#!ipxe\necho btw-img: not a machine of this server\nexit 1");
    // At done the deploy script leaves m1's folder; reinstall brings it back with a new token.
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${token(m1.mac)}&status=done`).code).toBe(200);
    expect(fs.existsSync(path.join(m1Folder, "grub", "deploy.cfg"))).toBe(false);
    expect(fs.existsSync(path.join(m1Folder, "token.img"))).toBe(false);
    expect(tftp("grub/disk.cfg").body).toContain("btw-img: m1 boots from its disk");
    expect(run("pxe-server.sh", ["reinstall", "--state-dir", stateDir, "--mac", m1.mac]).status).toBe(0);
    expect(tftp("grub/deploy.cfg").body).toContain("btw.replace=1");
    expect(tftp("token.img").body).toContain(token(m1.mac));
    // A deploy environment without shim and GRUB: UEFI machines get iPXE, and the server says why.
    const fallback = start([m1, m2]);
    expect(fallback.output).toContain("warning: no deploy environment has Debian's signed shim and GRUB");
    expect(fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8")).toContain("dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi\n");
    expect(fetch(`${base}/boot.ipxe`).body).not.toContain("platform");
    // Beside the LAN's DHCP server (proxy DHCP) GRUB would ask that server for its files: UEFI machines get iPXE.
    const proxy = run(
      "pxe-server.sh",
      ["start", "--state-dir", stateDir, "--interface", hostIf, "--address", address, "--http-port", port, "--deploy", `minimal=${signed}`, "--artifacts", `minimal=${artifactsDir}`],
      { PXE_MACHINES: machines([m1, m2]) },
    );
    expect(proxy.status).toBe(0);
    expect(proxy.output).toContain("proxy DHCP: UEFI machines get iPXE, not Debian's signed shim and GRUB");
    expect(fs.readFileSync(path.join(stateDir, "dnsmasq.conf"), "utf8")).toContain("pxe-service=tag:!ipxe,X86-64_EFI,btw-img,snponly.efi\n");
    expect(fetch(`${base}/boot.ipxe`).body).not.toContain("platform");
  });

  test("a folder with a newline (or other characters dnsmasq.conf or a shell would read) is refused", () => {
    for (const bad of [`${work}/x\ndhcp-script=/tmp/evil`, `${work}/it's`, `${work}/a,b`, "/"]) {
      const result = run("pxe-server.sh", ["stop", "--state-dir", bad]);
      expect({ bad, status: result.status }).toEqual({ bad, status: 2 });
    }
    expect(fs.existsSync("/tmp/evil")).toBe(false);
  });
});
