// The bare-metal scripts' safety rules, without any VM: pxe-server.sh on a veth
// pair whose far end (a network namespace) plays the machine, restore.sh's
// refusals on loop devices, disk-links.sh on a stand-in sysfs, and purge-cache.sh.
// Needs root (network namespaces, loop devices), dnsmasq and iPXE, as CI has.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { layoutTableArgs } from "../../testkit/baremetal";

// The scripts under test: PXE server (a host step), cache purge (host upkeep), and
// what the deploy environment runs on the machine.
const SCRIPT_DIRS = ["scripts/steps", "scripts/host", "deploy-env"].map((dir) => path.join(PROJECT_DIR, dir));
const scriptPath = (script: string) => SCRIPT_DIRS.map((dir) => path.join(dir, script)).find((file) => fs.existsSync(file)) ?? script;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-metal-scripts-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function run(script: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync("sh", [scriptPath(script), ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Every file under dir (recursively) with its permission bits. */
function modes(dir: string): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (current: string) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isSymbolicLink()) continue;
      found.set(full, fs.statSync(full).mode & 0o777);
      if (entry.isDirectory()) walk(full);
    }
  };
  found.set(dir, fs.statSync(dir).mode & 0o777);
  walk(dir);
  return found;
}

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
  const start = (list = [m1, m2], extra: string[] = []) =>
    run(
      "pxe-server.sh",
      [
        "start",
        "--state-dir",
        stateDir,
        "--interface",
        hostIf,
        "--address",
        address,
        "--dhcp-range",
        "10.213.97.100,10.213.97.150",
        "--http-port",
        port,
        "--deploy",
        `minimal=${deployDir}`,
        "--artifacts",
        `minimal=${artifactsDir}`,
        ...extra,
      ],
      { PXE_MACHINES: machines(list) },
    );
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
  /** The machine's token archive over HTTP, from the machine's side (the namespace, with its MAC) or from the host; empty when refused. */
  const tokenArchive = (mac: string, inNs = true) => {
    const args = ["-s", "-f", `${base}/cgi-bin/token?mac=${hyphens(mac)}`];
    return inNs ? execFileSync("sh", ["-c", '"$@" || true', "sh", "ip", "netns", "exec", ns, "curl", ...args]) : execFileSync("sh", ["-c", '"$@" || true', "sh", "curl", ...args]);
  };

  beforeAll(() => {
    fs.chmodSync(stateRoot, 0o755);
    const sh = (command: string) => execFileSync("sh", ["-c", command]);
    sh(`ip link add ${hostIf} type veth peer name ${hostIf}c && ip netns add ${ns} && ip link set ${hostIf}c netns ${ns}`);
    sh(`ip addr add ${address}/24 dev ${hostIf} && ip link set ${hostIf} up`);
    sh(`ip netns exec ${ns} sh -c 'ip link set ${hostIf}c address ${m1.mac} && ip addr add 10.213.97.2/24 dev ${hostIf}c && ip link set ${hostIf}c up'`);
    fs.mkdirSync(deployDir);
    for (const file of ["vmlinuz", "initramfs.img"]) fs.writeFileSync(path.join(deployDir, file), "");
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
    expect(script).toContain(`initrd --name token.img ${base}/cgi-bin/token?mac=\${mac:hexhyp}`);
    expect(script).toContain(` btw.seed=${base}/cgi-bin/seed `);
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

  test("btw-report from the machine: states with percent and note become its log; its inventory is kept; bad ones are refused", () => {
    // The deploy environment's client under busybox alone, from the machine's namespace.
    const applets = path.join(work, "report-bin");
    fs.mkdirSync(applets);
    const busybox = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();
    for (const applet of execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean)) fs.symlinkSync(busybox, path.join(applets, applet));
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
    const started = run(
      "pxe-server.sh",
      [
        "start",
        "--state-dir",
        stateDir,
        "--interface",
        hostIf,
        "--address",
        address,
        "--dhcp-range",
        "10.213.97.100,10.213.97.150",
        "--http-port",
        port,
        "--deploy",
        `minimal=${signed}`,
        "--artifacts",
        `minimal=${artifactsDir}`,
      ],
      { PXE_MACHINES: machines([m1, m2]) },
    );
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

describe("restore.sh refuses a wrong disk before reading any artifact", () => {
  const MiB = 1024 * 1024;
  const loops: string[] = [];
  const manifestDir = path.join(work, "capture");
  const loopDisk = (name: string, size: number, table?: string) => {
    const file = path.join(work, `${name}.raw`);
    fs.writeFileSync(file, "");
    fs.truncateSync(file, size);
    if (table) execFileSync("sfdisk", ["-q", file], { input: table });
    const device = execFileSync("losetup", ["-f", "--show", "-P", file], { encoding: "utf8" }).trim();
    loops.push(device);
    // Without udev the partition nodes may need a nudge.
    for (let i = 0; table && i < 25 && !fs.existsSync(`${device}p1`); i++) {
      spawnSync("partx", ["-a", device]);
      execFileSync("sleep", ["0.2"]);
    }
    return { file, device };
  };
  const restore = (disk: string, extra: string[] = []) => run("restore.sh", [...layoutTableArgs(work), "--manifest", manifestDir, "--disk", disk, ...extra]);
  const sha = (file: string) => execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];

  beforeAll(() => {
    // Only what the disk checks read: the artifacts it names do not exist.
    fs.mkdirSync(manifestDir);
    const manifest = {
      format_version: 1,
      disk: { min_size_bytes: 100 * MiB },
      partitions: [{ number: 1, role: "root", artifact: "p1.ext4.pcl.zst", sha256: "0" }],
      partition_table: { file: "partition-table.sfdisk", sha256: "0" },
      boot_code: { file: "boot-code.bin", sha256: "0" },
    };
    fs.writeFileSync(path.join(manifestDir, "manifest.json"), JSON.stringify(manifest));
  });

  afterAll(() => {
    for (const device of loops) spawnSync("losetup", ["-d", device]);
  });

  test("a partition", () => {
    const disk = loopDisk("parted", 200 * MiB, "label: gpt\nsize=150MiB\n");
    const before = sha(disk.file);
    const result = restore(`${disk.device}p1`);
    expect(result.status).toBe(1);
    expect(result.output).toContain(`${disk.device}p1 (${disk.device}p1) is a partition: give the whole disk`);
    expect(sha(disk.file)).toBe(before);
  });

  test("a missing disk, named by id", () => {
    const result = restore("/dev/disk/by-id/virtio-no-such-disk");
    expect(result.status).toBe(1);
    expect(result.output).toMatch(/no such disk: \/dev\/disk\/by-id\/virtio-no-such-disk \(disks here: .*loop/);
  });

  test("a disk smaller than the image, named through a link; the log names the disk it would write", () => {
    const disk = loopDisk("small", 64 * MiB);
    const link = path.join(work, "by-id-small");
    fs.symlinkSync(disk.device, link);
    const result = restore(link);
    expect(result.status).toBe(1);
    expect(result.output).toContain(`disk ${link}: ${disk.device}, model ${disk.file}, serial -, wwid -, ${64 * MiB} bytes`);
    expect(result.output).toContain(`is too small: ${64 * MiB} bytes, the image needs at least ${100 * MiB}`);
    expect(result.output).not.toContain("downloading");
    expect(spawnSync("cmp", ["-s", "-n", String(64 * MiB), disk.file, "/dev/zero"]).status).toBe(0);
  });

  test("a disk that already holds this install is left as it is (exit 3); one with another install too, --wipe or not (exit 4); --replace replaces it", () => {
    const disk = loopDisk("installed", 200 * MiB, "label: gpt\nsize=150MiB\n");
    execFileSync("mkfs.ext4", ["-q", `${disk.device}p1`]);
    const mnt = fs.mkdtempSync(path.join(work, "mnt-"));
    execFileSync("mount", [`${disk.device}p1`, mnt]);
    try {
      fs.mkdirSync(path.join(mnt, "var/lib/btw-img"), { recursive: true });
      fs.writeFileSync(path.join(mnt, "var/lib/btw-img/install-id"), "abc123\n");
    } finally {
      execFileSync("umount", [mnt]);
    }
    const before = sha(disk.file);
    const same = restore(disk.device, ["--wipe", "--install-id", "abc123"]);
    expect(same.status).toBe(3);
    expect(same.output).toContain("the disks already hold this install (abc123): nothing written");
    for (const wipe of [[], ["--wipe"]]) {
      const other = restore(disk.device, [...wipe, "--install-id", "def456"]);
      expect(other.status).toBe(4);
      expect(other.output).toContain("the disks hold another btw-img install (abc123): nothing written; to replace it, reinstall this machine");
    }
    // A reinstall's --replace goes on (to the artifacts, which this manifest only names).
    const replaced = restore(disk.device, ["--replace", "--install-id", "def456"]);
    expect(replaced.output).toContain("replacing the btw-img install abc123 (--replace)");
    expect(replaced.output).toContain("artifact missing");
    expect(sha(disk.file)).toBe(before);
  });

  test("a table this install wrote before it was cut short is written again without --wipe; another install's is refused", () => {
    // The disk GUID a restore with install ID abc123 gives its tables (lib/disks.sh, install_guid).
    const hex = crypto.createHash("sha256").update("btw-img install abc123").digest("hex").toUpperCase();
    const guid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
    const disk = loopDisk("cut-short", 200 * MiB, `label: gpt\nlabel-id: ${guid}\nsize=150MiB\n`);
    const before = sha(disk.file);
    const again = restore(disk.device, ["--install-id", "abc123"]);
    expect(again.output).toContain(`holds a table of this install (abc123), cut short before it was done: writing it again`);
    expect(again.output).toContain("artifact missing");
    const other = restore(disk.device, ["--install-id", "def456"]);
    expect(other.status).toBe(1);
    expect(other.output).toContain("holds a partition table: pass --wipe");
    expect(sha(disk.file)).toBe(before);
  });
});

describe("the restore's progress (deploy-env/lib/output.sh), under busybox as in the deploy environment", () => {
  test("follow reports a growing download every few seconds, a new state at once, and returns the job's status", () => {
    const dir = fs.mkdtempSync(path.join(work, "progress-"));
    const applets = path.join(dir, "bin");
    fs.mkdirSync(applets);
    const busybox = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();
    for (const applet of execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean)) fs.symlinkSync(busybox, path.join(applets, applet));
    fs.writeFileSync(path.join(dir, "report"), `#!${busybox} sh\necho "$*" >>${dir}/reports\n`, { mode: 0o755 });
    const script = [
      `. ${scriptPath("lib/output.sh")}`,
      // A download of 1000 bytes, 100 a second, then a failure (exit 3).
      `( for i in 1 2 3 4 5 6 7 8 9 10; do head -c 100 /dev/zero >>${dir}/file; sleep 1; done; exit 3 ) &`,
      `follow $! downloading "percent \\$(stat -c %s ${dir}/file 2>/dev/null || echo 0) 1000" p2.ext4.pcl.zst; echo "status $?"`,
      "progress writing 0 partition-tables",
    ].join("\n");
    const result = spawnSync(busybox, ["sh", "-c", script], { encoding: "utf8", env: { PATH: applets, BTW_PROGRESS: path.join(dir, "report"), PROG: "test" } });
    expect(result.stdout.trim()).toBe("status 3");
    const reports = fs.readFileSync(path.join(dir, "reports"), "utf8").trim().split("\n");
    const downloads = reports.filter((line) => line.startsWith("downloading ")).map((line) => Number(line.split(" ")[1]));
    // About every 3 seconds of 10: 3 or 4 reports, each further on, none past the whole.
    expect(downloads.length).toBeGreaterThanOrEqual(3);
    expect(downloads.length).toBeLessThanOrEqual(5);
    expect([...downloads].sort((a, b) => a - b)).toEqual(downloads);
    expect(new Set(downloads).size).toBe(downloads.length);
    expect(Math.max(...downloads)).toBeLessThanOrEqual(100);
    expect(reports.filter((line) => line.startsWith("downloading")).every((line) => line.endsWith(" p2.ext4.pcl.zst"))).toBe(true);
    // A new state goes at once, whenever the last report was.
    expect(reports[reports.length - 1]).toBe("writing 0 partition-tables");
  }, 60_000);
});

describe("erase.sh: a released machine's disks, under busybox with the deploy environment's wipefs and blkdiscard", () => {
  const MiB = 1024 * 1024;
  const loops: string[] = [];
  const dir = path.join(work, "erase");
  const busybox = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();
  const applets = path.join(dir, "bin");

  /** A 64 MiB disk: a GPT with vfat, ext4 and swap partitions, random bytes everywhere else. */
  const disk = (name: string) => {
    const file = path.join(dir, `${name}.raw`);
    fs.writeFileSync(file, crypto.randomBytes(64 * MiB));
    execFileSync("sfdisk", ["-q", file], { input: "label: gpt\nsize=16MiB\nsize=24MiB\nsize=16MiB\n" });
    const device = execFileSync("losetup", ["-f", "--show", "-P", file], { encoding: "utf8" }).trim();
    loops.push(device);
    for (let i = 0; i < 25 && !fs.existsSync(`${device}p3`); i++) {
      spawnSync("partx", ["-a", device]);
      execFileSync("sleep", ["0.2"]);
    }
    execFileSync("mkfs.vfat", [`${device}p1`], { stdio: "ignore" });
    execFileSync("mkfs.ext4", ["-q", "-F", `${device}p2`]);
    execFileSync("mkswap", [`${device}p3`], { stdio: "ignore" });
    return { file, device };
  };
  const signatures = (device: string) => execFileSync("wipefs", ["-n", device], { encoding: "utf8" });
  const erase = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(busybox, ["sh", scriptPath("erase.sh"), ...args], { encoding: "utf8", env: { PATH: applets, BTW_PROGRESS: path.join(dir, "report"), ...env } });
  const zero = (file: string, offset: number, length: number) => {
    const bytes = Buffer.alloc(length);
    const fd = fs.openSync(file, "r");
    try {
      fs.readSync(fd, bytes, 0, length, offset);
    } finally {
      fs.closeSync(fd);
    }
    return bytes.every((byte) => byte === 0);
  };

  beforeAll(() => {
    fs.mkdirSync(applets, { recursive: true });
    for (const applet of execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean)) fs.symlinkSync(busybox, path.join(applets, applet));
    // As in tools.img: the host's own wipefs and blkdiscard.
    for (const program of ["wipefs", "blkdiscard"]) {
      fs.rmSync(path.join(applets, program), { force: true });
      fs.symlinkSync(execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim(), path.join(applets, program));
    }
    fs.writeFileSync(path.join(dir, "report"), `#!${busybox} sh\necho "$*" >>${dir}/reports\n`, { mode: 0o755 });
  });

  afterAll(() => {
    for (const device of loops) spawnSync("losetup", ["-d", device]);
  });

  test("quick: no signature on the disk or any partition, their first and last MiB zero, the rest as it was", () => {
    const { file, device } = disk("quick");
    expect(signatures(device)).toContain("gpt");
    expect(signatures(`${device}p2`)).toContain("ext4");
    const middle = fs.readFileSync(file).subarray(20 * MiB, 21 * MiB);
    const result = erase(["--mode", "quick", "--disk", device]);
    expect({ status: result.status, stderr: result.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining(`erase: erased (quick): ${device}`) });
    // wipefs made the kernel read the (now empty) table again: the partitions are looked at where they were.
    expect(signatures(device)).toBe("");
    for (const [start, size] of [
      [1, 16],
      [17, 24],
      [41, 16],
    ]) {
      const part = execFileSync("losetup", ["-f", "--show", "-o", String(start * MiB), "--sizelimit", String(size * MiB), file], { encoding: "utf8" }).trim();
      loops.push(part);
      expect({ start, found: signatures(part) }).toEqual({ start, found: "" });
    }
    // Partitions start at 1, 17 and 41 MiB (sfdisk's 1 MiB alignment), the disk's backup GPT in its last MiB.
    for (const [offset, length] of [
      [0, MiB],
      [63 * MiB, MiB],
      [1 * MiB, MiB],
      [16 * MiB, MiB],
      [17 * MiB, MiB],
      [40 * MiB, MiB],
      [41 * MiB, MiB],
      [56 * MiB, MiB],
    ]) {
      expect({ offset: offset / MiB, zero: zero(file, offset, length) }).toEqual({ offset: offset / MiB, zero: true });
    }
    // Quick: only the ends.
    expect(
      fs
        .readFileSync(file)
        .subarray(20 * MiB, 21 * MiB)
        .equals(middle),
    ).toBe(true);
    expect(fs.readFileSync(path.join(dir, "reports"), "utf8").trim().split("\n").pop()).toBe(`erasing 100 ${device}`);
  });

  test("full: every byte zero, by discard or, where a disk cannot, by writing zeroes; bad input named before anything", () => {
    for (const env of [{}, { BTW_ERASE_NO_DISCARD: "1" }] as Record<string, string>[]) {
      const { file, device } = disk(`full${Object.keys(env).length}`);
      const result = erase(["--mode", "full", "--disk", device], env);
      expect({ status: result.status, stderr: result.stderr }).toMatchObject({ status: 0 });
      expect(result.stderr).toContain(Object.keys(env).length ? `writing zeroes over ${device} (64 MiB)` : `discarded ${device}`);
      expect(zero(file, 0, 64 * MiB)).toBe(true);
      expect(signatures(device)).toBe("");
    }
    expect(erase(["--mode", "sideways", "--disk", "/dev/null"]).status).toBe(2);
    const notBlock = erase(["--mode", "quick", "--disk", path.join(dir, "quick.raw")]);
    expect({ status: notBlock.status, stderr: notBlock.stderr }).toMatchObject({ status: 1, stderr: expect.stringContaining("is not a block device") });
  });
});

describe("restore.sh reads its layouts from the table lib/config/layout.ts writes", () => {
  test("a layout takes the disks its table line says, before anything else; an unknown layout is named with those there are", () => {
    const restore = (layout: string, disks: string[]) =>
      run("restore.sh", [...layoutTableArgs(work), "--layout", layout, "--manifest", "/nonexistent/manifest.json", ...disks.flatMap((disk) => ["--disk", disk])]);
    const cases: [string, string[], string][] = [
      ["single", ["/dev/vda", "/dev/vdb"], "--disk: layout single takes 1 disk(s), 2 given"],
      ["zfs", ["/dev/vda", "/dev/vdb"], "--disk: layout zfs takes 1 disk(s), 2 given"],
      ["zfs-mirror", ["/dev/vda"], "--disk: layout zfs-mirror needs 2 disks or more, 1 given"],
      ["raid1", ["/dev/vda"], "--disk: layout raid1 needs 2 disks or more, 1 given"],
      ["raid5", ["/dev/vda", "/dev/vdb"], "--layout: layout 'raid5' is not one this deploy environment restores (single raid1 zfs zfs-mirror)"],
    ];
    for (const [layout, disks, message] of cases) {
      const result = restore(layout, disks);
      expect([layout, result.status]).toEqual([layout, 2]);
      expect(result.output).toContain(`restore: ${message}`);
      expect(result.output).not.toContain("cannot read the manifest");
    }
  });

  test("a table with another line for a layout changes what it takes: no shell file restates the counts", () => {
    const table = path.join(work, "raid-of-three.tab");
    fs.writeFileSync(table, "single:single:1:1\nraid1:raid1:3:-\n");
    const result = run("restore.sh", ["--layouts", table, "--layout", "raid1", "--manifest", "/nonexistent/manifest.json", "--disk", "/dev/vda", "--disk", "/dev/vdb"]);
    expect(result.status).toBe(2);
    expect(result.output).toContain("restore: --disk: layout raid1 needs 3 disks or more, 2 given");
  });

  test("without a table it stops and says where the table comes from", () => {
    const result = run("restore.sh", ["--layouts", path.join(work, "no-such.tab"), "--manifest", "/nonexistent/manifest.json", "--disk", "/dev/vda"]);
    expect(result.status).toBe(2);
    expect(result.output).toContain("no layout table at");
    expect(result.output).toContain("lib/config/layout.ts");
  });
});

describe("disk-links.sh: udev's by-id and by-path names from sysfs", () => {
  const sys = path.join(work, "sysfs", "sys");
  const dev = path.join(work, "sysfs", "dev");
  /** A device folder at devices/<rel> of the given subsystem, with attributes. */
  const device = (rel: string, subsystem: string, attrs: Record<string, string | Buffer> = {}) => {
    const dir = path.join(sys, "devices", rel);
    fs.mkdirSync(dir, { recursive: true });
    if (subsystem) {
      const bus = path.join(sys, subsystem === "block" || subsystem === "nvme" ? "class" : "bus", subsystem);
      fs.mkdirSync(bus, { recursive: true });
      fs.symlinkSync(bus, path.join(dir, "subsystem"));
    }
    for (const [name, value] of Object.entries(attrs)) fs.writeFileSync(path.join(dir, name), value);
    return dir;
  };
  /** A disk: its block folder under parentRel, /sys/block/<name> and its device link. */
  const disk = (parentRel: string, name: string, deviceRel: string, attrs: Record<string, string> = {}) => {
    const dir = device(`${parentRel}/block/${name}`, "block", attrs);
    fs.mkdirSync(path.join(sys, "block"), { recursive: true });
    fs.symlinkSync(dir, path.join(sys, "block", name));
    fs.symlinkSync(path.join(sys, "devices", deviceRel), path.join(dir, "device"));
  };
  /** ATA IDENTIFY strings are byte-swapped words, space padded. */
  const ataString = (text: string, length: number) => Buffer.from(text.padEnd(length, " ")).swap16();

  beforeAll(() => {
    for (const pci of ["pci0000:00/0000:00:02.3/0000:04:00.0", "pci0000:00/0000:00:1d.0/0000:3d:00.0", "pci0000:00/0000:00:1f.2", "pci0000:00/0000:00:05.0"]) {
      const parts = pci.split("/");
      for (let i = 2; i <= parts.length; i++) device(parts.slice(0, i).join("/"), "pci");
    }
    // virtio-blk
    device("pci0000:00/0000:00:02.3/0000:04:00.0/virtio2", "virtio");
    disk("pci0000:00/0000:00:02.3/0000:04:00.0/virtio2", "vda", "pci0000:00/0000:00:02.3/0000:04:00.0/virtio2", { serial: "disk-0001\n" });
    // NVMe
    device("pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0", "nvme", { model: "Samsung SSD 980 PRO 1TB                 \n", serial: "S5GXNX0R123456      \n" });
    disk("pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0", "nvme0n1", "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0", { nsid: "1\n", wwid: "eui.002538b111b2c3d4\n" });
    // SATA: sysfs cuts the model at 16 characters; VPD page 89h has the drive's own strings.
    const identify = Buffer.alloc(60 + 512);
    ataString("S6PTNZ0R654321", 20).copy(identify, 60 + 20);
    ataString("Samsung SSD 870 EVO 1TB", 40).copy(identify, 60 + 54);
    device("pci0000:00/0000:00:1f.2/ata3", "", {});
    fs.mkdirSync(path.join(sys, "class", "ata_port", "ata3"), { recursive: true });
    fs.writeFileSync(path.join(sys, "class", "ata_port", "ata3", "port_no"), "3\n");
    device("pci0000:00/0000:00:1f.2/ata3/host2", "scsi");
    device("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0", "scsi");
    device("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0", "scsi", { vendor: "ATA     \n", model: "Samsung SSD 870 \n", wwid: "naa.5002538f4212abcd\n", vpd_pg89: identify });
    disk("pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0", "sda", "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0");
    // virtio-scsi: the host number counts from the controller's first host.
    device("pci0000:00/0000:00:05.0/virtio3", "virtio");
    device("pci0000:00/0000:00:05.0/virtio3/host3", "scsi");
    device("pci0000:00/0000:00:05.0/virtio3/host3/target3:0:1", "scsi");
    device("pci0000:00/0000:00:05.0/virtio3/host3/target3:0:1/3:0:1:0", "scsi", { vendor: "QEMU    \n", model: "QEMU HARDDISK   \n" });
    disk("pci0000:00/0000:00:05.0/virtio3/host3/target3:0:1/3:0:1:0", "sdb", "pci0000:00/0000:00:05.0/virtio3/host3/target3:0:1/3:0:1:0");
    // Never a loop device.
    device("virtual/block/loop0", "block");
    fs.symlinkSync(path.join(sys, "devices/virtual/block/loop0"), path.join(sys, "block", "loop0"));
    fs.mkdirSync(dev, { recursive: true });
  });

  test("virtio, NVMe, SATA and SCSI disks get the links udev would give them (under busybox, as in the deploy environment)", () => {
    // Busybox's applets only, as in the initramfs.
    const applets = path.join(work, "busybox-bin");
    fs.mkdirSync(applets);
    const busybox = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();
    for (const applet of execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean)) fs.symlinkSync(busybox, path.join(applets, applet));
    const result = spawnSync(busybox, ["sh", scriptPath("disk-links.sh"), "--sys", sys, "--dev", dev], { encoding: "utf8", env: { PATH: applets } });
    expect(result.stderr).not.toMatch(/not found|invalid/);
    expect(result.status).toBe(0);
    const links = (kind: string) =>
      Object.fromEntries(
        fs
          .readdirSync(path.join(dev, "disk", kind))
          .sort()
          .map((name) => [name, fs.readlinkSync(path.join(dev, "disk", kind, name))]),
      );
    expect(links("by-id")).toEqual({
      "virtio-disk-0001": "../../vda",
      "nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0R123456": "../../nvme0n1",
      "nvme-eui.002538b111b2c3d4": "../../nvme0n1",
      "ata-Samsung_SSD_870_EVO_1TB_S6PTNZ0R654321": "../../sda",
      "wwn-0x5002538f4212abcd": "../../sda",
    });
    expect(links("by-path")).toEqual({
      "pci-0000:04:00.0": "../../vda",
      "pci-0000:3d:00.0-nvme-1": "../../nvme0n1",
      "pci-0000:00:1f.2-ata-3.0": "../../sda",
      "pci-0000:00:1f.2-ata-3": "../../sda",
      "pci-0000:00:05.0-scsi-0:0:1:0": "../../sdb",
    });
  });
});

describe("purge-cache.sh", () => {
  test("removes nothing from a folder without btw-img's marker, and the cache's folders from one with it", () => {
    const cache = path.join(work, "cache");
    for (const part of ["base", "images", "engine"]) fs.mkdirSync(path.join(cache, part), { recursive: true });
    const refused = run("purge-cache.sh", ["--cache-dir", cache]);
    expect(refused.status).toBe(1);
    expect(refused.output).toContain("is not btw-img's cache (no .btw-img-owned in it): nothing removed");
    expect(fs.readdirSync(cache).sort()).toEqual(["base", "engine", "images"]);
    fs.writeFileSync(path.join(cache, ".btw-img-owned"), "");
    expect(run("purge-cache.sh", ["--cache-dir", cache]).status).toBe(0);
    expect(fs.readdirSync(cache).sort()).toEqual([".btw-img-owned", "engine"]);
  });
});

describe("deploy-init.sh", () => {
  test("run anywhere but as the deploy environment's process 1, it refuses before mounting anything", () => {
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
    const result = run("deploy-init.sh", ["--help"]);
    expect(result).toEqual({ status: 2, output: expect.stringContaining("runs only as process 1") });
    expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).toBe(mounts);
  });
});
