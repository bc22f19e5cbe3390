// restore.sh without any VM: its refusals on loop devices before any artifact
// is read, its layout table, and its progress reports (lib/output.sh) under
// busybox as in the deploy environment. Needs root (loop devices).
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { layoutTableArgs } from "../../testkit/baremetal";
import { BUSYBOX, busyboxPath, run, scriptPath, workDir } from "../helpers/metal-scripts";

const work = workDir();

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

  test("a manifest or a seed that does not match the sha256 its boot script gave, before any disk is looked at", () => {
    const result = restore("/dev/disk/by-id/virtio-no-such-disk", ["--manifest-sha256", "0".repeat(64)]);
    expect(result.status).toBe(1);
    expect(result.output).toContain("does not match the sha256 its boot script gave (--manifest-sha256): nothing written");
    expect(result.output).not.toContain("no-such-disk");
    // The seed, as fetch_seed reads it (lib/manifest.sh), from a folder.
    const seed = path.join(work, "seed");
    fs.mkdirSync(seed, { recursive: true });
    fs.writeFileSync(path.join(seed, "user-data"), "#cloud-config\n");
    fs.writeFileSync(path.join(seed, "meta-data"), "instance-id: m1\n");
    const listed = execFileSync("sh", ["-c", 'cd "$1" && sha256sum user-data meta-data | sha256sum | cut -d" " -f1', "sh", seed], { encoding: "utf8" }).trim();
    const fetchSeed = (sha: string) =>
      spawnSync(
        "sh",
        [
          "-c",
          `PROG=restore; . ${scriptPath("lib/output.sh")}; . ${scriptPath("lib/manifest.sh")}; work_dir=$1; seed=$2; seed_sha256=$3; fetch_seed && echo "seed:$seed_files"`,
          "sh",
          fs.mkdtempSync(path.join(work, "w-")),
          seed,
          sha,
        ],
        {
          encoding: "utf8",
        },
      );
    expect(fetchSeed(listed).stdout.trim()).toBe("seed: user-data meta-data");
    const wrong = fetchSeed("0".repeat(64));
    expect({ status: wrong.status, stderr: wrong.stderr }).toEqual({ status: 1, stderr: "restore: error: the seed does not match the sha256 its boot script gave (--seed-sha256): nothing written\n" });
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
    const applets = busyboxPath(path.join(dir, "bin"));
    const busybox = BUSYBOX;
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
