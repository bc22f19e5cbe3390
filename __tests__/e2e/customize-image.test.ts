// Customize Debian's real generic image (the fixture acquired into the shared
// cache as a lab would) offline with a profile; the result is clean and nothing is
// left on the host.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { PROJECT_DIR } from "../../lib/config/config";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { readProfile } from "../../lib/config/profile";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { installedPackages, runScript, runScriptAsync, runScriptUntil, withImageRoot } from "../../testkit/image";
import { holdStarted } from "../../testkit/held";
import { hostLeftovers, loopAttachments, orphanLoopsSince } from "../../testkit/libvirt";

const PROFILES = path.join(PROJECT_DIR, "profiles");

describe("customize the cloud image offline with a profile", () => {
  let work: string;
  let base: string;
  /** The cached raw disk base links to: no step may leave it attached or mounted either. */
  let baseFile: string;
  let baseSha256: string;
  const sha256 = (file: string) => execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
  // What the stack passes the script: the profile resolved by lib/config/profile.ts for the image's release.
  const customize = (profilesDir: string, profile: string, output: string) => customizeArgs(readProfile(profilesDir, profile, "trixie"), "trixie", base, output, { secureBoot: false });

  // Acquiring (served, verified, unpacked) is acquire-image.test.ts's; here the base the other customize tests share.
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-customize-"));
    base = acquireFixtureBase("trixie", work);
    baseFile = fs.realpathSync(base);
    baseSha256 = sha256(base);
  }, 1_800_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work, baseFile)).toEqual([]);
  });

  test("minimal installs its packages and leaves the image clean", () => {
    const output = path.join(work, "minimal.qcow2");
    // An apt configuration file of the host's own (no package ships it), so the check below always has one to
    // look for: comments only, which no apt run on this host reads as an option. Named by this process; the
    // customize tests run one at a time.
    const hostOwn = `/etc/apt/apt.conf.d/99btw-test-host-own-${process.pid}`;
    const releaseHostOwn = holdStarted(`customize-host-apt-${process.pid}`, { paths: [hostOwn] });
    try {
      fs.writeFileSync(hostOwn, `// btw-img customize-image.test.ts (pid ${process.pid}): the host's own apt configuration, never the image's\n`);
      checkMinimal(output, hostOwn);
    } finally {
      releaseHostOwn();
    }
  }, 1_200_000);

  function checkMinimal(output: string, hostOwn: string): void {
    const run = runScript("customize-image.sh", customize(PROFILES, "minimal", output));
    expect(run.status).toBe(0);
    expect(fs.existsSync(output)).toBe(true);
    expect(sha256(base)).toBe(baseSha256);
    const hostAptFiles = [
      ...fs.readdirSync("/etc/apt/apt.conf.d").map((f) => path.join("/etc/apt/apt.conf.d", f)),
      ...fs.readdirSync("/etc/apt/sources.list.d").map((f) => path.join("/etc/apt/sources.list.d", f)),
    ]
      // Files a Debian package ships are in the image anyway; the host's own are not.
      .filter((f) => fs.statSync(f).isFile() && spawnSync("dpkg", ["-S", f]).status !== 0);
    expect(hostAptFiles).toContain(hostOwn);
    withImageRoot(output, (root) => {
      const packages = installedPackages(root);
      for (const name of ["qemu-guest-agent", "curl", "less", "vim-tiny", "cloud-init"]) expect(packages.has(name)).toBe(true);
      expect(fs.readFileSync(path.join(root, "etc/machine-id"), "utf8")).toBe("");
      // The ESP is mounted on first use, not waited for at boot; root's line is Debian's.
      const fstab = fs
        .readFileSync(path.join(root, "etc/fstab"), "utf8")
        .split("\n")
        .filter((l) => /^\S/.test(l) && !l.startsWith("#"));
      expect(fstab.find((l) => l.split(/\s+/)[1] === "/boot/efi")?.split(/\s+/)[3]).toMatch(/^defaults,umask=077,x-systemd\.automount,nofail$/);
      expect(fstab.find((l) => l.split(/\s+/)[1] === "/")?.split(/\s+/)[3]).not.toContain("automount");
      expect(fs.readdirSync(path.join(root, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))).toEqual([]);
      expect(fs.readdirSync(path.join(root, "var/lib/apt/lists")).filter((f) => !["lock", "partial", "auxfiles"].includes(f))).toEqual([]);
      expect(fs.readdirSync(path.join(root, "var/cache/apt/archives")).filter((f) => f.endsWith(".deb"))).toEqual([]);
      expect(fs.existsSync(path.join(root, "usr/sbin/policy-rc.d"))).toBe(false);
      // The image's own resolver and sources are back, not the host's.
      expect(fs.readlinkSync(path.join(root, "etc/resolv.conf"))).toMatch(/systemd|run/);
      const sources = fs.readFileSync(path.join(root, "etc/apt/sources.list.d/debian.sources"), "utf8");
      expect(sources).toContain("trixie");
      expect(sources).not.toContain("bookworm");
      // Nothing of the host's own apt configuration anywhere in /etc, /var/lib, /root, /usr/local.
      expect(execFileSync("find", ["etc", "var", "usr/local", "-name", "*btw-host*"], { cwd: root, encoding: "utf8" })).toBe("");
      for (const hostFile of hostAptFiles) {
        const distinctive = fs
          .readFileSync(hostFile, "utf8")
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l.length > 20 && !/^(Types|Components|Signed-By|Suites|URIs):/.test(l) && !l.startsWith("deb "));
        const found = execFileSync("sh", ["-c", `for line in "$@"; do grep -rlsF -- "$line" etc var/lib root usr/local 2>/dev/null; done; true`, "sh", ...distinctive], {
          cwd: root,
          encoding: "utf8",
        });
        expect({ hostFile, found: found.trim() }).toEqual({ hostFile, found: "" });
      }
    });
  }

  // What booting them showed, read instead: each kernel line's root= is the root partition's PARTUUID, and the first entry's kernel and initrd are there.
  test("two profiles of one base customized at once both write root=PARTUUID of their root partition, touch nothing in the host's /dev, and name a kernel they hold", async () => {
    // Both builds run grub-mkconfig on copies of one base (same root UUID and PARTUUID),
    // each in a chroot whose /dev is its own.
    const profiles = fs.mkdtempSync(path.join(work, "profiles-"));
    fs.cpSync(PROFILES, profiles, { recursive: true });
    fs.mkdirSync(path.join(profiles, "regrub/commands.d"), { recursive: true });
    fs.writeFileSync(path.join(profiles, "regrub/extends"), "minimal\n");
    fs.writeFileSync(path.join(profiles, "regrub/commands.d/10-update-grub.sh"), "update-grub\n");
    const hostDev = () =>
      execFileSync("find", ["/dev", "-xdev"], { encoding: "utf8" })
        .split("\n")
        .filter((f) => !/^\/dev\/(pts|shm|loop)/.test(f))
        .sort();
    const devBefore = hostDev();
    const outputs = ["metal", "regrub"].map((profile) => path.join(work, `concurrent-${profile}.qcow2`));
    const runs = await Promise.all(["metal", "regrub"].map((profile, i) => runScriptAsync("customize-image.sh", customize(profiles, profile, outputs[i]))));
    for (const run of runs) expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(runs[1].stderr).toMatch(/running commands\.d\/10-update-grub\.sh/);
    expect(hostDev()).toEqual(devBefore);
    for (const output of outputs) {
      withImageRoot(output, (root) => {
        // The partition withImageRoot mounted as root, its PARTUUID read from the image's partition table.
        const rootPartition = execFileSync("findmnt", ["--noheadings", "--output", "SOURCE", "--mountpoint", root], { encoding: "utf8" }).trim();
        const partUuid = execFileSync("blkid", ["-p", "-o", "value", "-s", "PART_ENTRY_UUID", rootPartition], { encoding: "utf8" }).trim();
        expect(partUuid).toMatch(/^[0-9a-f-]{36}$/);
        const grub = fs.readFileSync(path.join(root, "boot/grub/grub.cfg"), "utf8");
        const kernelLines = grub.split("\n").filter((line) => /^\s*linux\s/.test(line));
        expect(kernelLines.length).toBeGreaterThan(0);
        expect([...new Set(kernelLines.map((line) => /\sroot=(\S+)/.exec(line)?.[1]))]).toEqual([`PARTUUID=${partUuid}`]);
        expect(grub).not.toMatch(/\/dev\/loop/);
        const firstEntry = /^menuentry [^\n]*\{\n([\s\S]*?)^\}/m.exec(grub)?.[1] ?? "";
        const kernel = /^\s*linux\s+(\S+)/m.exec(firstEntry)?.[1] ?? "";
        const initrd = /^\s*initrd\s+(\S+)/m.exec(firstEntry)?.[1] ?? "";
        expect({ kernel, initrd }).toEqual({ kernel: expect.stringMatching(/^\/boot\/vmlinuz-/), initrd: expect.stringMatching(/^\/boot\/initrd\.img-/) });
        expect([kernel, initrd].filter((file) => !fs.statSync(path.join(root, file), { throwIfNoEntry: false })?.isFile())).toEqual([]);
        expect(fs.readdirSync(path.join(root, "dev"))).toEqual([]);
      });
    }
  }, 1_800_000);

  test("a package that does not exist fails naming the package and the profile list", () => {
    const profiles = fs.mkdtempSync(path.join(work, "profiles-"));
    fs.mkdirSync(path.join(profiles, "broken/install.d"), { recursive: true });
    fs.writeFileSync(path.join(profiles, "broken/install.d/tools.list"), "curl\nno-such-package-btw\n");
    const output = path.join(work, "broken.qcow2");
    const run = runScript("customize-image.sh", customize(profiles, "broken", output));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/broken.*install\.d\/tools\.list:2: package 'no-such-package-btw' is not available/);
    expect(fs.existsSync(output)).toBe(false);
    expect(sha256(base)).toBe(baseSha256);
  }, 600_000);

  test("a failing commands.d script fails naming the script and its exit code", () => {
    const profiles = fs.mkdtempSync(path.join(work, "profiles-"));
    fs.mkdirSync(path.join(profiles, "failing/commands.d"), { recursive: true });
    fs.writeFileSync(path.join(profiles, "failing/commands.d/20-fail.sh"), "echo about to fail\nexit 7\n");
    const output = path.join(work, "failing.qcow2");
    const run = runScript("customize-image.sh", customize(profiles, "failing", output));
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("commands.d/20-fail.sh failed with exit code 7");
    expect(fs.existsSync(output)).toBe(false);
  }, 600_000);

  // Profiles themselves are checked at synth (__tests__/unit/profiles.test.ts); the script checks what it is given.
  test("a missing layer folder, a package argument apt would take as an option and an image of another release fail before the image is changed", () => {
    const output = path.join(work, "x.qcow2");
    const minimal = path.join(PROFILES, "minimal");
    const missing = runScript("customize-image.sh", ["--base", base, "--release", "trixie", "--layer", path.join(work, "nosuch"), "--output", output]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/layer folder not found: .*\/nosuch/);
    const option = runScript("customize-image.sh", ["--base", base, "--release", "trixie", "--layer", minimal, "--package", "-oDebug::pkgProblemResolver=1", "--output", output]);
    expect(option.status).toBe(2);
    expect(option.stderr).toContain("--package: not a package name: '-oDebug::pkgProblemResolver=1'");
    const otherRelease = runScript("customize-image.sh", customizeArgs(readProfile(PROFILES, "minimal", "bookworm"), "bookworm", base, output, { secureBoot: false }));
    expect(otherRelease.status).toBe(1);
    expect(otherRelease.stderr).toContain("the image is trixie but --release is bookworm");
    expect(otherRelease.stderr).not.toMatch(/apt-get update|using the host's apt/);
    expect(sha256(base)).toBe(baseSha256);
    expect(fs.readdirSync(work).filter((f) => f.startsWith("x.qcow2"))).toEqual([]);
  });

  test("SIGTERM mid-build rolls back; a run killed with SIGKILL is recovered by the next run", async () => {
    const output = path.join(work, "interrupted.qcow2");
    const loopsBefore = loopAttachments();
    // A layer store of its own: the earlier tests' cached layers would finish the build before any signal.
    const args = [...customize(PROFILES, "minimal", output), "--layer-store", path.join(work, "interrupted-layers")];
    const terminated = await runScriptUntil("customize-image.sh", args, /apt-get update|installing/i, "SIGTERM");
    // Stopped by the signal (its TERM trap exits 143), not ended early for another reason.
    const stopped = terminated.signalSent && terminated.status === 143;
    expect({ signalSent: terminated.signalSent, status: terminated.status, tail: stopped ? "" : terminated.stderr.slice(-3000) }).toEqual({ signalSent: true, status: 143, tail: "" });
    expect(hostLeftovers(work)).toEqual([]);
    expect(fs.existsSync(output)).toBe(false);

    const killed = await runScriptUntil("customize-image.sh", args, /apt-get update|installing/i, "SIGKILL");
    expect({ signalSent: killed.signalSent, signal: killed.signal }).toEqual({ signalSent: true, signal: "SIGKILL" });
    expect(fs.existsSync(output)).toBe(false);
    const recovered = runScript("customize-image.sh", args);
    expect(recovered.status).toBe(0);
    expect(recovered.stderr).toMatch(/recover|stale|previous/i);
    // The killed run's loop device, on an export that went with its mount namespace, was detached too.
    expect(orphanLoopsSince(loopsBefore)).toEqual([]);
    expect(sha256(base)).toBe(baseSha256);
    withImageRoot(output, (root) => expect(installedPackages(root).has("qemu-guest-agent")).toBe(true));
  }, 1_200_000);
});
