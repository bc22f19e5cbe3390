// A profile build is a chain of cached layers (scripts/steps/customize/layers.sh) on
// Debian's real trixie image: a change in the last commands.d script rebuilds that
// step only, builds of the same layers at once wait for each other, and an
// interrupted layer, or one whose store's file system filled, is never left behind.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { readProfile } from "../../lib/config/profile";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { installedPackages, runScript, runScriptAsync, runScriptUntil, withImageRoot } from "../../testkit/image";
import { hostLeftovers, loopAttachments, orphanLoopsSince } from "../../testkit/libvirt";

describe("a profile build is a chain of cached layers", () => {
  let work: string;
  let base: string;
  let profiles: string;
  const layered = () => path.join(profiles, "layered");
  const lastScript = () => path.join(layered(), "commands.d/20-last.sh");
  const args = (output: string, store: string) => [...customizeArgs(readProfile(profiles, "layered", "trixie"), "trixie", base, output, { secureBoot: false }), "--layer-store", store];
  const build = (output: string, store: string) => runScript("customize-image.sh", args(output, store));
  const layersIn = (store: string) =>
    fs
      .readdirSync(store)
      .filter((f) => f.endsWith(".qcow2"))
      .sort();
  const stepsIn = (store: string) =>
    fs
      .readdirSync(store)
      .filter((f) => f.endsWith(".step"))
      .map((f) => fs.readFileSync(path.join(store, f), "utf8").trim())
      .sort();
  const daemons = () => spawnSync("pgrep", ["-af", `qemu-storage-daemon.*${work}`], { encoding: "utf8" }).stdout.trim();
  /** What matters of an image: its packages, what the profile wrote, and that it is clean. */
  const essentials = (image: string) =>
    withImageRoot(image, (root) => ({
      packages: [...installedPackages(root)].sort(),
      last: fs.readFileSync(path.join(root, "etc/btw-last"), "utf8"),
      first: fs.readFileSync(path.join(root, "etc/btw-first"), "utf8"),
      file: fs.readFileSync(path.join(root, "etc/btw-layered.conf"), "utf8"),
      machineId: fs.readFileSync(path.join(root, "etc/machine-id"), "utf8"),
      aptLists: fs.readdirSync(path.join(root, "var/lib/apt/lists")).filter((f) => !["lock", "partial", "auxfiles"].includes(f)),
      tmp: fs.readdirSync(path.join(root, "tmp")),
      leftovers: execFileSync("find", ["etc", "usr/sbin", "-name", "*btw-host*", "-o", "-name", "grub-install.btw-real", "-o", "-name", "policy-rc.d"], { cwd: root, encoding: "utf8" }),
    }));

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ly-layers-"));
    base = acquireFixtureBase("trixie", work);
    // A profile of each kind of step: packages, files/, two commands.d scripts.
    profiles = path.join(work, "profiles");
    fs.mkdirSync(path.join(layered(), "install.d"), { recursive: true });
    fs.mkdirSync(path.join(layered(), "files/etc"), { recursive: true });
    fs.mkdirSync(path.join(layered(), "commands.d"), { recursive: true });
    fs.writeFileSync(path.join(layered(), "install.d/tools.list"), "qemu-guest-agent\n");
    fs.writeFileSync(path.join(layered(), "files/etc/btw-layered.conf"), "from files/\n");
    fs.writeFileSync(path.join(layered(), "commands.d/10-first.sh"), "dpkg -s qemu-guest-agent >/dev/null && echo first >/etc/btw-first\n");
    fs.writeFileSync(lastScript(), "echo last one >/etc/btw-last\n");
  }, 1_800_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work)).toEqual([]);
    expect(daemons()).toBe("");
  });

  test("changing the last commands.d script rebuilds only that step, and the image equals a build from scratch", () => {
    const store = path.join(work, "store");
    const first = build(path.join(work, "first.qcow2"), store);
    expect({ status: first.status, tail: first.status === 0 ? "" : first.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(first.stderr).toMatch(/layer 1\/4 packages: building/);
    expect(first.stderr).toMatch(/layer 4\/4 layered\/commands\.d\/20-last\.sh: building/);
    expect(stepsIn(store)).toEqual(["layered/commands.d/10-first.sh", "layered/commands.d/20-last.sh", "layered/files", "packages"]);
    const before = layersIn(store);

    fs.writeFileSync(lastScript(), "echo last two >/etc/btw-last\n");
    const again = build(path.join(work, "again.qcow2"), store);
    expect(again.status).toBe(0);
    for (const cached of ["1/4 packages", "2/4 layered/files", "3/4 layered/commands.d/10-first.sh"]) {
      expect(again.stderr).toContain(`layer ${cached}: cached`);
    }
    expect(again.stderr).toMatch(/layer 4\/4 layered\/commands\.d\/20-last\.sh: building/);
    expect(again.stderr).not.toMatch(/apt-get update|installing:|copying files\/|running commands\.d\/10-first\.sh/);
    // The three layers before it are the same files; one new layer was added.
    const after = layersIn(store);
    expect(after.filter((layer) => before.includes(layer))).toEqual(before);
    expect(after.length).toBe(before.length + 1);

    const scratch = build(path.join(work, "scratch.qcow2"), path.join(work, "scratch-store"));
    expect(scratch.status).toBe(0);
    const rebuilt = essentials(path.join(work, "again.qcow2"));
    expect(rebuilt.last).toBe("last two\n");
    expect(rebuilt.first).toBe("first\n");
    expect(rebuilt.packages).toContain("qemu-guest-agent");
    expect({ machineId: rebuilt.machineId, aptLists: rebuilt.aptLists, tmp: rebuilt.tmp, leftovers: rebuilt.leftovers }).toEqual({ machineId: "", aptLists: [], tmp: [], leftovers: "" });
    expect(rebuilt).toEqual(essentials(path.join(work, "scratch.qcow2")));
  }, 1_800_000);

  test("two builds of the same layers at once: one builds each layer, the other waits and reuses it", async () => {
    const store = path.join(work, "shared-store");
    const outputs = ["a", "b"].map((name) => path.join(work, `concurrent-${name}.qcow2`));
    const runs = await Promise.all(outputs.map((output) => runScriptAsync("customize-image.sh", args(output, store))));
    for (const run of runs) expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    const built = runs.map((run) => /layer 1\/4 packages: building/.test(run.stderr));
    expect(built.filter(Boolean)).toHaveLength(1);
    const waited = runs[built.indexOf(false)].stderr;
    expect(waited).toMatch(/waiting for another build of layer packages/);
    expect(waited).toMatch(/layer 1\/4 packages: cached/);
    expect(layersIn(store)).toHaveLength(4);
    expect(fs.readdirSync(store).filter((f) => f.endsWith(".partial"))).toEqual([]);
    for (const output of outputs) expect(essentials(output).last).toBe("last two\n");
  }, 1_800_000);

  test("SIGTERM in the middle of a layer leaves no partial layer, no mount, no loop device and no daemon", async () => {
    const store = path.join(work, "store");
    const before = layersIn(store);
    fs.writeFileSync(lastScript(), "echo last three >/etc/btw-last\nsleep 600\n");
    const output = path.join(work, "interrupted.qcow2");
    const terminated = await runScriptUntil("customize-image.sh", args(output, store), /running commands\.d\/20-last\.sh/, "SIGTERM");
    // Stopped by the signal (its TERM trap exits 143), not ended early for another reason.
    const stopped = terminated.signalSent && terminated.status === 143;
    expect({ signalSent: terminated.signalSent, status: terminated.status, tail: stopped ? "" : terminated.stderr.slice(-3000) }).toEqual({ signalSent: true, status: 143, tail: "" });
    expect(layersIn(store)).toEqual(before);
    expect(fs.readdirSync(store).filter((f) => f.endsWith(".partial"))).toEqual([]);
    expect(fs.existsSync(output)).toBe(false);
    expect(fs.existsSync(`${output}.work`)).toBe(false);
    expect(hostLeftovers(work)).toEqual([]);
    expect(daemons()).toBe("");

    fs.writeFileSync(lastScript(), "echo last three >/etc/btw-last\n");
    const resumed = build(output, store);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/layer 3\/4 layered\/commands\.d\/10-first\.sh: cached/);
    expect(essentials(output).last).toBe("last three\n");
  }, 1_800_000);

  test("what a later step or the clean-up deletes is not in the image: freed blocks are discarded through the layers", () => {
    // shrink writes 64 MiB of random data in one step and deletes it in the next; plain writes nothing.
    const profile = (name: string, scripts: Record<string, string>) => {
      fs.mkdirSync(path.join(profiles, name, "commands.d"), { recursive: true });
      for (const [file, text] of Object.entries(scripts)) fs.writeFileSync(path.join(profiles, name, "commands.d", file), text);
    };
    profile("shrink", { "10-big.sh": "head -c 67108864 /dev/urandom >/root/btw-big\n", "20-drop.sh": "rm /root/btw-big\n" });
    profile("plain", { "10-none.sh": "true\n" });
    // tmpbig leaves 64 MiB in /var/tmp, which the clean-up before the image is written deletes.
    profile("tmpbig", { "10-big.sh": "head -c 67108864 /dev/urandom >/var/tmp/btw-big\n" });
    const sizes: Record<string, number> = {};
    for (const name of ["shrink", "tmpbig", "plain"]) {
      const output = path.join(work, `${name}.qcow2`);
      const store = path.join(work, `${name}-store`);
      const run = runScript("customize-image.sh", [...customizeArgs(readProfile(profiles, name, "trixie"), "trixie", base, output, { secureBoot: false }), "--layer-store", store]);
      expect({ name, status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ name, status: 0, tail: "" });
      sizes[name] = fs.statSync(output).size;
      sizes[`${name} layers`] = layersIn(store).reduce((sum, layer) => sum + fs.statSync(path.join(store, layer)).size, 0);
    }
    // The data was written (a layer holds it) ...
    expect(sizes["shrink layers"]).toBeGreaterThan(sizes["plain layers"] + 48 * 2 ** 20);
    expect(sizes["tmpbig layers"]).toBeGreaterThan(sizes["plain layers"] + 48 * 2 ** 20);
    // ... and the image does not carry it.
    expect(sizes.shrink).toBeLessThan(sizes.plain + 16 * 2 ** 20);
    expect(sizes.tmpbig).toBeLessThan(sizes.plain + 16 * 2 ** 20);
  }, 1_800_000);

  test("a layer store whose file system fills during a step: the build stops saying so, keeps no layer, and runs again once there is space", () => {
    // The store on a 192 MiB ext4 of its own; the step writes 256 MiB into the image, which has room for it.
    fs.mkdirSync(path.join(profiles, "filler", "commands.d"), { recursive: true });
    fs.writeFileSync(path.join(profiles, "filler", "commands.d", "10-fill.sh"), "head -c 268435456 /dev/urandom >/root/btw-fill\n");
    const disk = path.join(work, "small-store.ext4");
    const mountpoint = path.join(work, "small-store");
    const store = path.join(mountpoint, "layers");
    const output = path.join(work, "filler.qcow2");
    const build = (env: NodeJS.ProcessEnv = {}) =>
      runScript("customize-image.sh", [...customizeArgs(readProfile(profiles, "filler", "trixie"), "trixie", base, output, { secureBoot: false }), "--layer-store", store], env);
    const storeFiles = () => fs.readdirSync(store).filter((f) => /\.qcow2|\.partial/.test(f));
    execFileSync("truncate", ["-s", "192M", disk]);
    execFileSync("mkfs.ext4", ["-q", "-F", disk]);
    fs.mkdirSync(mountpoint);
    execFileSync("mount", ["-o", "loop", disk, mountpoint]);
    try {
      // The check before the step asks for less than it writes: the writes under the export fail.
      const full = build({ BTW_LAYER_FREE_MIB: "32" });
      expect(full.status).not.toBe(0);
      expect(full.stderr).toMatch(/writing the image failed \(sync: .+\); is the cache's file system full\? Nothing of this step is kept/);
      expect(storeFiles()).toEqual([]);
      expect(fs.existsSync(output)).toBe(false);
      // With the default need (1 GiB) the step does not start: it says how much is missing, where.
      const refused = build();
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toMatch(new RegExp(`layer filler/commands\\.d/10-fill\\.sh needs 1024 MiB free in ${store}, which has \\d+ MiB: free \\d+ MiB or more there`));
      expect(refused.stderr).not.toMatch(/running commands\.d\/10-fill\.sh/);
      expect(storeFiles()).toEqual([]);

      // The file system grown to 2 GiB: the same build in the same store succeeds.
      execFileSync("umount", [mountpoint]);
      execFileSync("truncate", ["-s", "2G", disk]);
      execFileSync("e2fsck", ["-f", "-p", disk]);
      execFileSync("resize2fs", ["-p", disk], { stdio: "ignore" });
      execFileSync("mount", ["-o", "loop", disk, mountpoint]);
      const again = build();
      expect({ status: again.status, tail: again.status === 0 ? "" : again.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
      expect(storeFiles()).toHaveLength(1);
      withImageRoot(output, (root) => expect(fs.statSync(path.join(root, "root/btw-fill")).size).toBe(268435456));
    } finally {
      spawnSync("umount", [mountpoint]);
    }
  }, 1_800_000);

  test("a daemon that stops answering mid-layer does not hang the rollback: its export is cut off, nothing is left", async () => {
    const store = path.join(work, "store");
    const before = layersIn(store);
    const loopsBefore = loopAttachments();
    fs.writeFileSync(lastScript(), "echo last four >/etc/btw-last\nsleep 600\n");
    const output = path.join(work, "stuck.qcow2");
    const exportOf = `mountpoint=${output}.work/disk.raw`;
    let stopped = "";
    try {
      const terminated = await runScriptUntil("customize-image.sh", args(output, store), /running commands\.d\/20-last\.sh/, "SIGTERM", () => {
        // The layer's daemon stops serving its export (SIGSTOP): every request to it would wait forever.
        stopped = spawnSync("pgrep", ["-f", exportOf], { encoding: "utf8" }).stdout.trim();
        if (/^\d+$/.test(stopped)) process.kill(Number(stopped), "SIGSTOP");
      });
      expect(stopped).toMatch(/^\d+$/);
      expect(terminated.signalSent).toBe(true);
      expect(terminated.status).not.toBe(0);
      expect(terminated.stderr).toMatch(/ended the FUSE connection of the export/);
      expect(layersIn(store)).toEqual(before);
      expect(fs.readdirSync(store).filter((f) => f.endsWith(".partial"))).toEqual([]);
      expect(fs.existsSync(output)).toBe(false);
      expect(fs.existsSync(`${output}.work`)).toBe(false);
      expect(orphanLoopsSince(loopsBefore)).toEqual([]);
    } finally {
      // Whatever happened above, no stopped daemon of this test is left behind.
      if (stopped) spawnSync("kill", ["-KILL", stopped]);
    }
  }, 1_800_000);
});
