// Bare-metal artifacts without any VM: capture the customized image with
// partclone, restore it onto a blank (bigger) loop disk, and refuse bad input
// before writing a single byte.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LoopDisk, customizedTestImage, layoutTableArgs, readManifest, sha256File, withMounted } from "../../testkit/baremetal";
import { installedPackages, runScript, runScriptUntil } from "../../testkit/image";
import { hostLeftovers } from "../../testkit/libvirt";

const GiB = 1024 ** 3;

describe("capture the tested image as partclone artifacts and restore them onto a blank disk", () => {
  let work: string;
  let image: string;
  let capture: string;
  /** A blank disk for one test, released even when an assertion fails. */
  const withBlankDisk = (name: string, size: number, use: (disk: LoopDisk) => void) => {
    const disk = new LoopDisk(path.join(work, `${name}.raw`), size);
    try {
      use(disk);
    } finally {
      disk.release();
    }
  };
  /** restore.sh on this host, with the layout table of lib/config/layout.ts; layout single (its first). */
  const restore = (args: string[]) => runScript("restore.sh", [...layoutTableArgs(work), ...args]);
  /** A copy of the capture to bend for one test. */
  const copyOfCapture = (name: string) => {
    const dir = path.join(work, name);
    fs.cpSync(capture, dir, { recursive: true });
    return dir;
  };

  beforeAll(async () => {
    image = await customizedTestImage("minimal");
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-baremetal-"));
    capture = path.join(work, "artifacts", "minimal");
  }, 2_400_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work)).toEqual([]);
  });

  const PREPARE = ["--prepare", "root-tar", "--prepare", "bios-boot-mdraid"];

  test("capture writes one zstd partclone image per partition, the table, the boot code, what the layouts asked for and a manifest (after releasing what a capture killed outright left)", async () => {
    const args = ["--image", image, "--output-dir", capture, "--profile", "minimal", ...PREPARE];
    // Killed outright once it holds its loop device: the device and the work folder stay behind.
    const killed = await runScriptUntil("capture-partitions.sh", args, /attached read-only at/, "SIGKILL");
    expect({ signalSent: killed.signalSent, signal: killed.signal }).toEqual({ signalSent: true, signal: "SIGKILL" });
    const stale = fs.readdirSync(path.dirname(capture)).filter((f) => f.includes(".capture-"));
    expect(stale).toHaveLength(1);
    expect(hostLeftovers(work).filter((left) => left.startsWith("loop "))).toEqual([expect.stringContaining(`${stale[0]}/disk.raw`)]);
    // The next run releases them (afterEach: no loop device or mount of this test is left) and captures.
    const run = runScript("capture-partitions.sh", args);
    expect({ status: run.status, stderr: run.status === 0 ? "" : run.stderr }).toEqual({ status: 0, stderr: "" });
    expect(run.stderr).toContain(`releasing what an interrupted run left: ${path.join(path.dirname(capture), stale[0])}`);
    const manifest = readManifest(capture);
    expect(manifest).toMatchObject({ format_version: 1, profile: "minimal", source_image: { sha256: sha256File(image) }, disk: { label: "gpt" } });
    const byNumber = Object.fromEntries(manifest.partitions.map((p: any) => [p.number, p]));
    expect(byNumber[1]).toMatchObject({ role: "root", fs: "ext4", tool: "partclone.ext4", type_guid: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" });
    expect(byNumber[14]).toMatchObject({ role: "bios-boot", tool: "partclone.dd", type_guid: "21686148-6449-6E6F-744E-656564454649" });
    expect(byNumber[15]).toMatchObject({ role: "esp", fs: "vfat", tool: "partclone.vfat", type_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" });
    for (const part of manifest.partitions) {
      const file = path.join(capture, part.artifact);
      expect(fs.statSync(file).size).toBe(part.artifact_size);
      expect(sha256File(file)).toBe(part.sha256);
    }
    // Only used blocks are stored: the 3 GiB root compresses to a fraction of it.
    expect(byNumber[1].artifact_size).toBeLessThan(byNumber[1].size_bytes / 4);
    expect(fs.statSync(path.join(capture, "boot-code.bin")).size).toBe(440);
    expect(fs.readFileSync(path.join(capture, "partition-table.sfdisk"), "utf8")).toMatch(/^label: gpt$/m);
    expect(fs.readdirSync(path.dirname(capture)).filter((f) => f.includes(".capture-"))).toEqual([]);

    // What the layouts asked for: the root's files as a tar (zfs), GRUB's BIOS boot partition for md RAID1.
    expect(manifest.prepared["root-tar"]).toMatchObject({ number: 1, tool: "tar", artifact: "p1.files.tar.zst" });
    expect(manifest.prepared["bios-boot-mdraid"]).toMatchObject({ number: 14, tool: "partclone.dd", artifact: "p14.raw.mdraid.pcl.zst" });
    for (const entry of Object.values(manifest.prepared) as any[]) {
      const file = path.join(capture, entry.artifact);
      expect({ artifact: entry.artifact, size: fs.statSync(file).size, sha256: sha256File(file) }).toEqual({ artifact: entry.artifact, size: entry.artifact_size, sha256: entry.sha256 });
      expect(entry.recipe).toMatch(/^[0-9a-f]{64}$/);
    }
    const tar = path.join(capture, "p1.files.tar.zst");
    expect(Number(execFileSync("sh", ["-c", 'zstd -dc "$1" | wc -c', "sh", tar], { encoding: "utf8" }))).toBe(manifest.prepared["root-tar"].unpacked_bytes);
    // Owners by number and modes: su stays setuid root.
    expect(execFileSync("sh", ["-c", 'zstd -dc "$1" | tar -tvf - ./usr/bin/su', "sh", tar], { encoding: "utf8" })).toMatch(/^-rwsr-xr-x 0\/0 /);
    // GRUB's core.img for the array is not the captured one (which names /boot's partition).
    const unpacked = (artifact: string) => execFileSync("sh", ["-c", 'zstd -dc "$1" | sha256sum', "sh", path.join(capture, artifact)], { encoding: "utf8" });
    expect(unpacked("p14.raw.mdraid.pcl.zst")).not.toBe(unpacked("p14.raw.pcl.zst"));
  }, 600_000);

  test("capturing the same image again, with what it has or less, does nothing; an unknown preparation is refused", () => {
    const before = fs.statSync(path.join(capture, "manifest.json")).mtimeMs;
    for (const prepare of [PREPARE, [], ["--prepare", "bios-boot-mdraid"]]) {
      const run = runScript("capture-partitions.sh", ["--image", image, "--output-dir", capture, "--profile", "minimal", ...prepare]);
      expect({ prepare, status: run.status, upToDate: run.stderr.includes("up to date") }).toEqual({ prepare, status: 0, upToDate: true });
    }
    expect(fs.statSync(path.join(capture, "manifest.json")).mtimeMs).toBe(before);
    const unknown = runScript("capture-partitions.sh", ["--image", image, "--output-dir", capture, "--prepare", "zfs-send"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("--prepare: unknown preparation 'zfs-send' (known: root-tar bios-boot-mdraid)");
  }, 300_000);

  test("a raid1 restore from a capture without its preparation is refused before anything is written, naming the --prepare to capture with", () => {
    // Its manifest alone: the refusal comes before any artifact is read.
    const unprepared = path.join(work, "unprepared");
    fs.mkdirSync(unprepared);
    const manifest = readManifest(capture);
    delete manifest.prepared;
    fs.writeFileSync(path.join(unprepared, "manifest.json"), JSON.stringify(manifest));
    withBlankDisk("raid-a", 4 * GiB, (first) =>
      withBlankDisk("raid-b", 4 * GiB, (second) => {
        const run = restore(["--manifest", unprepared, "--layout", "raid1", "--disk", first.device, "--disk", second.device]);
        expect(run.status).toBe(1);
        expect(run.stderr).toContain("the capture has no bios-boot-mdraid, which layout raid1 writes: capture the image again with --prepare bios-boot-mdraid");
        expect(first.isAllZeros() && second.isAllZeros()).toBe(true);
      }),
    );
  }, 300_000);

  test(
    "restore onto a bigger blank disk: table grown, root has the profile's packages and the seed, ESP has the UEFI fallback",
    () =>
      withBlankDisk("target", 5 * GiB, (disk) => {
        const seed = path.join(work, "seed");
        fs.mkdirSync(seed);
        fs.writeFileSync(path.join(seed, "user-data"), "#cloud-config\nhostname: metal1\n");
        fs.writeFileSync(path.join(seed, "meta-data"), "instance-id: metal1-1\nlocal-hostname: metal1\n");
        const run = restore(["--manifest", capture, "--disk", disk.device, "--seed-dir", seed]);
        expect(run.stderr).toContain("all 5 artifacts match");
        expect(run.status).toBe(0);

        const table = JSON.parse(execFileSync("sfdisk", ["-J", disk.device], { encoding: "utf8" })).partitiontable;
        const root = table.partitions.find((p: any) => p.node.endsWith("p1"));
        const manifest = readManifest(capture);
        const sourceRoot = manifest.partitions.find((p: any) => p.role === "root");
        expect(table.id).toBe(execFileSync("sh", ["-c", "sed -n 's/^label-id: //p' \"$1\"", "sh", path.join(capture, "partition-table.sfdisk")], { encoding: "utf8" }).trim());
        expect(root.start).toBe(sourceRoot.start_sector);
        expect(root.size).toBeGreaterThan(sourceRoot.size_sectors);
        expect((root.start + root.size) * 512).toBeGreaterThan(5 * GiB - 2 * 1024 * 1024);

        withMounted(disk.partition(1), path.join(work, "mnt"), (mnt) => {
          for (const name of ["qemu-guest-agent", "curl", "cloud-init"]) expect(installedPackages(mnt).has(name)).toBe(true);
          expect(fs.readFileSync(path.join(mnt, "var/lib/cloud/seed/nocloud/user-data"), "utf8")).toContain("hostname: metal1");
          expect(fs.existsSync(path.join(mnt, "var/lib/cloud/seed/nocloud/meta-data"))).toBe(true);
          // The file system grew with its partition.
          const blocks = execFileSync("df", ["-B1", "--output=size", mnt], { encoding: "utf8" }).split("\n")[1].trim();
          expect(Number(blocks)).toBeGreaterThan(4 * GiB);
        });
        expect(execFileSync("mdir", ["-i", disk.partition(15), "::/EFI/BOOT"], { encoding: "utf8" })).toMatch(/BOOTX64\s+EFI/);
        const bootCode = execFileSync("dd", [`if=${disk.device}`, "bs=440", "count=1", "status=none"]);
        expect(bootCode.equals(fs.readFileSync(path.join(capture, "boot-code.bin")))).toBe(true);
        const biosBoot = execFileSync("sh", ["-c", 'dd if="$1" bs=512 count=6144 status=none | sha256sum', "sh", disk.partition(14)], { encoding: "utf8" });
        const capturedBiosBoot = execFileSync("sh", ["-c", 'zstd -dc "$1" | sha256sum', "sh", path.join(capture, "p14.raw.pcl.zst")], { encoding: "utf8" });
        expect(biosBoot).toBe(capturedBiosBoot);

        // Now that the disk holds partitions, restoring again needs --wipe.
        const again = restore(["--manifest", capture, "--disk", disk.device]);
        expect(again.status).toBe(1);
        expect(again.stderr).toMatch(/holds a partition table: pass --wipe/);
      }),
    600_000,
  );

  test("a tampered artifact is refused before anything is written: the target stays all zeros", () => {
    const tampered = copyOfCapture("tampered");
    const file = path.join(tampered, "p15.vfat.pcl.zst");
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(file, bytes);
    withBlankDisk("tampered-target", 4 * GiB, (disk) => {
      const run = restore(["--manifest", path.join(tampered, "manifest.json"), "--disk", disk.device]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/checksum mismatch for p15\.vfat\.pcl\.zst/);
      expect(disk.isAllZeros()).toBe(true);
    });
  }, 300_000);

  test("a target smaller than the image needs is refused", () => {
    withBlankDisk("small-target", 2 * GiB, (disk) => {
      const run = restore(["--manifest", capture, "--disk", disk.device]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/too small: 2147483648 bytes, the image needs at least \d+/);
      expect(disk.isAllZeros()).toBe(true);
    });
  }, 300_000);

  test("a manifest of another format version is refused", () => {
    const future = copyOfCapture("future");
    const manifest = readManifest(future);
    fs.writeFileSync(path.join(future, "manifest.json"), JSON.stringify({ ...manifest, format_version: 2 }));
    withBlankDisk("future-target", 4 * GiB, (disk) => {
      const run = restore(["--manifest", future, "--disk", disk.device]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/manifest format version 2 is not supported \(this restore reads format 1\)/);
      expect(disk.isAllZeros()).toBe(true);
    });
  }, 300_000);
});
