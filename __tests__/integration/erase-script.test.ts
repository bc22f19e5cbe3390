// erase.sh without any VM: a released machine's disks on loop devices, under
// busybox with the host's wipefs and blkdiscard, as tools.img has them.
// Needs root (loop devices).
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BUSYBOX, busyboxPath, scriptPath, workDir } from "../helpers/metal-scripts";

const work = workDir();

describe("erase.sh: a released machine's disks, under busybox with the deploy environment's wipefs and blkdiscard", () => {
  const MiB = 1024 * 1024;
  const loops: string[] = [];
  const dir = path.join(work, "erase");
  const busybox = BUSYBOX;
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
    // As in tools.img: the host's own wipefs and blkdiscard.
    busyboxPath(applets, ["wipefs", "blkdiscard"]);
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
