// The deploy environment's other scripts and the host's cache purge, without any
// VM: disk-links.sh on a stand-in sysfs, purge-cache.sh, deploy-init.sh's refusal
// to run anywhere but as process 1.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { run, scriptPath, workDir } from "../helpers/metal-scripts";

const work = workDir();

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
