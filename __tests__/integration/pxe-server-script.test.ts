// pxe-server.sh without any VM (the machine: a network namespace, helpers/namespace-machine.ts):
// one install per machine, seeds and reports only with its token from its address, records that
// survive, release and reinstall, the deploy environment's report client (btw-report) under busybox.
// Its folders, its port and UEFI machines: pxe-server-uefi.test.ts.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BUSYBOX, busyboxPath, modes, run, scriptPath, workDir } from "../helpers/metal-scripts";
import { namespaceMachine } from "../helpers/namespace-machine";

const work = workDir();

describe("pxe-server.sh: one install per machine, seeds only for it", () => {
  const { ns, hostIf, base, m1, m2, stateDir, recordsDir, artifactsDir, start, fetch, token, record, hyphens, archivedToken, tokenArchive } = namespaceMachine(work, "a", 97, "18197");

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
    // No seed before its deploy environment reported up; then none by MAC, by another machine's token or to another
    // address; with its token, to its address, the seed.
    expect(fetch(`${base}/cgi-bin/seed/${token(m1.mac)}/user-data`).code).toBe(404);
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${token(m1.mac)}&status=deploy-env-up`).code).toBe(200);
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
    // The machine reported nothing, as far as the tests after this one know.
    for (const suffix of ["", ".log", ".up"]) fs.rmSync(path.join(recordsDir, `${m1.mac}${suffix}`));
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
    for (const suffix of ["", ".log", ".inventory.json", ".up"]) fs.rmSync(path.join(recordsDir, `${m1.mac}${suffix}`));
  });

  test("the seed is served from the machine's up report until its started, then a later boot gets a new token, which its first request makes the machine's; an up report too old serves none", () => {
    const first = token(m1.mac);
    const seedWith = (t: string) => fetch(`${base}/cgi-bin/seed/${t}/user-data`);
    const report = (t: string, status: string) => fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${t}&status=${status}`).code;
    const refusals = () => fs.readFileSync(path.join(stateDir, "httpd.log"), "utf8");
    expect(report(first, "deploy-env-up")).toBe(200);
    expect(seedWith(first).body).toContain("secret-of-m1");
    expect(report(first, "started")).toBe(200);
    expect(seedWith(first).code).toBe(404);
    expect(refusals()).toMatch(/seed: refused user-data to \S+ \(seen as \S+\): this boot reported started/);
    // This boot goes on reporting with its token; the next boot's is armed in the archive iPXE's initrd carries.
    expect(report(first, "writing")).toBe(200);
    const next = archivedToken(tokenArchive(m1.mac));
    expect(next).toMatch(/^[0-9a-f]{32}$/);
    expect(next).not.toBe(first);
    expect(token(m1.mac)).toBe(first);
    // Another started of the same boot arms nothing new, and a restart keeps what is armed.
    expect(report(first, "started")).toBe(200);
    expect(start().status).toBe(0);
    expect(archivedToken(tokenArchive(m1.mac))).toBe(next);
    expect(seedWith(next).code).toBe(404);
    // The next boot's first request (its up report) makes its token the machine's: the old one is void.
    expect(report(next, "deploy-env-up")).toBe(200);
    expect(token(m1.mac)).toBe(next);
    expect(report(first, "failed")).toBe(403);
    expect(seedWith(first).code).toBe(404);
    expect(seedWith(next).body).toContain("secret-of-m1");
    // An up report older than the server's SEED_TTL (900 s) serves no seed.
    const up = path.join(recordsDir, `${m1.mac}.up`);
    const old = new Date(Date.now() - 901_000);
    fs.utimesSync(up, old, old);
    expect(seedWith(next).code).toBe(404);
    expect(refusals()).toMatch(/seed: refused user-data to \S+ \(seen as \S+\): no up report in the last 900 s/);
    for (const suffix of ["", ".log", ".up"]) fs.rmSync(path.join(recordsDir, `${m1.mac}${suffix}`));
    expect(
      fs
        .readdirSync(recordsDir)
        .filter((file) => file.startsWith(m1.mac))
        .sort(),
    ).toEqual([`${m1.mac}.token`]);
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
    expect(fetch(`${base}/cgi-bin/report?mac=${m1.mac}&token=${token(m1.mac)}&status=deploy-env-up`).code).toBe(200);
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
    expect(fetch(`${base}/cgi-bin/report?mac=${m2.mac}&token=${token(m2.mac)}&status=deploy-env-up`).code).toBe(200);
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

  test("multicast: a session for each artifact, waiting for the machines whose layout writes it; boot scripts name the table; stop ends the senders", () => {
    // A capture with a preparation: m1 (single) writes p1 and p15, m3 (a zfs layout) the root's tar and p15.
    const manifestFile = path.join(artifactsDir, "manifest.json");
    const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
    const parts = {
      partitions: [
        { number: 1, artifact: "p1.ext4.pcl.zst" },
        { number: 15, artifact: "p15.vfat.pcl.zst" },
      ],
      prepared: { "root-tar": { number: 1, artifact: "root.tar.zst" } },
    };
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, ...parts }));
    for (const file of ["p1.ext4.pcl.zst", "p15.vfat.pcl.zst", "root.tar.zst"]) fs.writeFileSync(path.join(artifactsDir, file), file);
    const m3 = { name: "m3", mac: "52:54:00:97:00:03" };
    const senders = () =>
      spawnSync("pgrep", ["-f", `multicast-sender.sh ${stateDir}/`], { encoding: "utf8" })
        .stdout.trim()
        .split("\n")
        .filter(Boolean);
    try {
      const started = start(
        [{ ...m1, transport: "multicast", prepared: [] } as typeof m1, { ...m3, transport: "multicast", prepared: ["root-tar"] } as typeof m1, m2],
        ["--multicast-port-base", "19700", "--multicast-max-wait", "7", "--multicast-wait", "40"],
      );
      expect({ status: started.status, output: started.status === 0 ? "" : started.output }).toEqual({ status: 0, output: "" });
      expect(started.output).toContain("multicast: minimal/p1.ext4.pcl.zst on ports 19700-19701 (a session when 1 machine(s) joined, or 7s after the first did)");
      expect(started.output).toContain("multicast: minimal/p15.vfat.pcl.zst on ports 19702-19703 (a session when 2 machine(s) joined");
      expect(started.output).toContain("multicast: minimal/root.tar.zst on ports 19704-19705 (a session when 1 machine(s) joined");
      expect(fetch(`${base}/multicast/minimal.tab`).body).toBe("p1.ext4.pcl.zst 19700\np15.vfat.pcl.zst 19702\nroot.tar.zst 19704\n");
      expect(senders()).toHaveLength(3);
      // udp-sender itself runs for each (the rendezvous on the all-hosts group, on the bridge).
      expect(spawnSync("pgrep", ["-f", `udp-sender --file ${stateDir}/http/artifacts/minimal/p15.vfat.pcl.zst --portbase 19702 --interface ${hostIf}`]).status).toBe(0);
      const script = fetch(`${base}/cgi-bin/boot?mac=${hyphens(m1.mac)}`).body;
      expect(script).toContain(` btw.multicast=${base}/multicast/minimal.tab btw.multicast_wait=40 `);
      // m2 restores over HTTP: no table on its line.
      expect(fs.readFileSync(path.join(stateDir, "machines", m2.mac, "deploy.ipxe.in"), "utf8")).not.toContain("btw.multicast");
    } finally {
      expect(run("pxe-server.sh", ["stop", "--state-dir", stateDir]).status).toBe(0);
    }
    expect(senders()).toEqual([]);
    expect(spawnSync("pgrep", ["-f", `udp-sender --file ${stateDir}/`]).status).toBe(1);
  });
});
