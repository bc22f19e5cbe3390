// A bare-metal machine's disks and layout (baremetal.machines[].disks, .layout):
// what the config accepts, what it refuses and how each refusal names the key,
// the machine and the profile. No image, no machine.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { ConfigError, LabConfig, PROJECT_DIR } from "../../lib/config/config";
import { LAYOUT_NEEDS, layoutTable, missingPackages, preparations, PREPARATIONS } from "../../lib/config/layout";
import { readProfile } from "../../lib/config/profile";
import { parseConfig } from "../helpers/test-config";
import { testLab } from "../../testkit/lab-yaml";

const PXE = { interface: "br50", address: "10.50.0.1" };
const MAC = "52:54:00:00:00:01";
const SHIPPED_PROFILES = path.join(PROJECT_DIR, "profiles");

// Profiles of these tests: minimal, metal (extends it), raid (metal and mdadm), zfs (metal and ZFS), zfs-tools-only.
let profilesDir: string;
const profile = (name: string, packages: string[], parent?: string) => {
  fs.mkdirSync(path.join(profilesDir, name, "install.d"), { recursive: true });
  fs.writeFileSync(path.join(profilesDir, name, "install.d", `${name}.list`), packages.join("\n") + "\n");
  if (parent) fs.writeFileSync(path.join(profilesDir, name, "extends"), `${parent}\n`);
};
beforeAll(() => {
  profilesDir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-layout-profiles-"));
  profile("minimal", ["qemu-guest-agent"]);
  profile("metal", ["linux-image-amd64"], "minimal");
  profile("raid", ["mdadm=4.4-5"], "metal");
  profile("zfs", ["zfs-dkms", "zfs-initramfs/trixie-backports", "zfsutils-linux"], "metal");
  profile("zfs-tools-only", ["zfsutils-linux"], "metal");
});
afterAll(() => fs.rmSync(profilesDir, { recursive: true, force: true }));

function lab(machine: Record<string, unknown>, profiles = profilesDir): LabConfig {
  const yaml = stringify(testLab({ extra: { baremetal: { pxe: PXE, machines: [{ name: "metal1", mac: MAC, ...machine }] } } }));
  return parseConfig(yaml, "/labs/lab.yaml", { profilesDir: profiles });
}

function problems(machine: Record<string, unknown>, profiles = profilesDir): string[] {
  try {
    lab(machine, profiles);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error("the config was accepted");
}

describe("a machine's disks and layout", () => {
  test("without either: layout single on the machine's only disk, as before", () => {
    expect(lab({}, SHIPPED_PROFILES).baremetal.machines[0]).toMatchObject({ layout: "single", disks: [] });
  });

  test("disk: X is the one-disk list [X]: the code sees only disks", () => {
    const machine = lab({ disk: "/dev/disk/by-id/wwn-0x5002538f4123abcd" }).baremetal.machines[0];
    expect(machine.disks).toEqual(["/dev/disk/by-id/wwn-0x5002538f4123abcd"]);
    expect(machine).not.toHaveProperty("disk");
  });

  test("kernel names become /dev paths; by-id and by-path names stay as written, in order", () => {
    const machine = lab({
      profile: "raid",
      layout: "raid1",
      disks: ["sda", "nvme0n1", "/dev/vdb", "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PUNX0R123456A", "/dev/disk/by-path/pci-0000:00:17.0-ata-1"],
    }).baremetal.machines[0];
    expect(machine.disks).toEqual(["/dev/sda", "/dev/nvme0n1", "/dev/vdb", "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PUNX0R123456A", "/dev/disk/by-path/pci-0000:00:17.0-ata-1"]);
  });

  test("a kernel name given as disk is a /dev path too", () => {
    expect(lab({ disk: "nvme0n1" }).baremetal.machines[0].disks).toEqual(["/dev/nvme0n1"]);
  });

  test("an unknown layout lists the four", () => {
    expect(problems({ layout: "raid5" })).toEqual(["baremetal.machines[0].layout: 'raid5' is not one of 'single', 'raid1', 'zfs', 'zfs-mirror'"]);
  });

  test("disk and disks together are refused: one key says which disks", () => {
    expect(problems({ disk: "sda", disks: ["sdb"] })).toEqual(["baremetal.machines[0].disk: give either disk (one disk) or disks (a list), not both"]);
  });

  test("an empty disks list is refused", () => {
    expect(problems({ disks: [] })).toEqual(["baremetal.machines[0].disks: lists no disk: list the disks, or leave the key out for the machine's only disk"]);
  });

  test("raid1 and zfs-mirror need at least two disks, listed", () => {
    expect(problems({ layout: "raid1" })).toEqual(["baremetal.machines[0].disks: is required with layout raid1: list at least 2 disks"]);
    expect(problems({ layout: "zfs-mirror", disks: ["sda"] })).toContain("baremetal.machines[0].disks: layout zfs-mirror needs at least 2 disks, 1 listed");
    expect(problems({ layout: "raid1", disk: "sda" })).toEqual(["baremetal.machines[0].disk: layout raid1 needs at least 2 disks, 1 listed: list them under disks"]);
  });

  test("single and zfs take one disk: more is refused, naming the mirror layouts", () => {
    expect(problems({ disks: ["sda", "sdb"] })).toEqual(["baremetal.machines[0].disks: layout single takes 1 disk, 2 listed (for a mirror use layout raid1 or zfs-mirror)"]);
    expect(problems({ layout: "zfs", disks: ["sda", "sdb"] })).toContain("baremetal.machines[0].disks: layout zfs takes 1 disk, 2 listed (for a mirror use layout zfs-mirror)");
  });

  test("the same disk twice is refused, naming both places (a kernel name and its /dev path are one disk)", () => {
    expect(problems({ layout: "raid1", disks: ["/dev/sda", "sdb", "sda"] })).toContain("baremetal.machines[0].disks[2]: /dev/sda is listed twice (also disks[0])");
  });

  test("partitions are refused in disks as in disk, naming the whole disk", () => {
    expect(problems({ layout: "raid1", disks: ["sda1", "/dev/disk/by-id/wwn-0x5002538f4123abcd-part2"] })).toEqual([
      "baremetal.machines[0].disks[0]: /dev/sda1 is a partition: give the whole disk (/dev/sda)",
      "baremetal.machines[0].disks[1]: /dev/disk/by-id/wwn-0x5002538f4123abcd-part2 is a partition: give the whole disk (/dev/disk/by-id/wwn-0x5002538f4123abcd)",
    ]);
  });

  test("names with whitespace, shell or template characters, other /dev/disk folders or '..' are refused", () => {
    for (const [index, bad] of ["sd a", "sda;reboot", "$(reboot)", "/dev/disk/by-id/x${HOME}", "/dev/disk/by-uuid/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab", "SDA", "../sda", "/dev/sda b"].entries()) {
      const found = problems({ layout: "raid1", disks: ["sdb", bad] });
      expect([index, found]).toEqual([index, ["baremetal.machines[0].disks[1]: must be a whole-disk device such as sda, /dev/nvme0n1, /dev/disk/by-id/... or /dev/disk/by-path/..."]]);
    }
    expect(problems({ layout: "raid1", disks: ["sdb", "/dev/disk/by-id/.."] })).toEqual(["baremetal.machines[0].disks[1]: /dev/disk/by-id/..: '.' and '..' do not name a disk"]);
  });
});

describe("a layout needs its packages in the machine's profile", () => {
  test("raid1 with a profile that installs mdadm (through its chain, with a version) is accepted", () => {
    expect(lab({ profile: "raid", layout: "raid1", disks: ["sda", "sdb"] }).baremetal.machines[0]).toMatchObject({ profile: "raid", layout: "raid1" });
  });

  test("zfs and zfs-mirror with a profile that installs ZFS (a package from backports too) are accepted", () => {
    expect(lab({ profile: "zfs", layout: "zfs", disks: ["nvme0n1"] }).baremetal.machines[0]).toMatchObject({ profile: "zfs", layout: "zfs", disks: ["/dev/nvme0n1"] });
    expect(lab({ profile: "zfs", layout: "zfs-mirror", disks: ["nvme0n1", "nvme1n1"] }).baremetal.machines[0]).toMatchObject({ layout: "zfs-mirror" });
  });

  test("zfs-mirror with a profile that has part of ZFS is refused, naming the machine, the profile and what it lacks", () => {
    expect(problems({ profile: "zfs-tools-only", layout: "zfs-mirror", disks: ["sda", "sdb"] })).toEqual([
      expect.stringMatching(
        /^baremetal\.machines\[0\]\.layout: machine metal1 has layout zfs-mirror, which needs zfs-initramfs, zfs-dkms in its profile, and profile zfs-tools-only does not install them/,
      ),
    ]);
  });

  test("raid1 with a profile without mdadm is refused, naming the machine and the profile", () => {
    expect(problems({ profile: "metal", layout: "raid1", disks: ["sda", "sdb"] })).toEqual([
      "baremetal.machines[0].layout: machine metal1 has layout raid1, which needs mdadm in its profile, and profile metal does not install it (add it to an install.d list of the profile or a profile it extends)",
    ]);
  });

  test("the lab's default profile is the one named when the machine has none", () => {
    expect(problems({ layout: "raid1", disks: ["sda", "sdb"] })).toEqual([
      "baremetal.machines[0].layout: machine metal1 has layout raid1, which needs mdadm in its profile, and profile minimal does not install it (add it to an install.d list of the profile or a profile it extends)",
    ]);
  });

  test("a profile with part of ZFS lacks only the rest", () => {
    expect(missingPackages("zfs-mirror", readProfile(profilesDir, "zfs-tools-only", "trixie").packages)).toEqual(["zfs-initramfs", "zfs-dkms"]);
    expect(missingPackages("zfs", readProfile(profilesDir, "zfs", "trixie").packages)).toEqual([]);
  });

  test("a ZFS profile does not make raid1 possible, nor mdadm ZFS", () => {
    expect(problems({ profile: "zfs", layout: "raid1", disks: ["sda", "sdb"] })[0]).toMatch(/machine metal1 has layout raid1, which needs mdadm .* profile zfs does not install it/);
    expect(missingPackages("zfs", readProfile(profilesDir, "raid", "trixie").packages)).toEqual(["zfsutils-linux", "zfs-initramfs", "zfs-dkms"]);
  });

  test("an unknown profile is named once, by its key, not again by the layout", () => {
    expect(problems({ profile: "nosuch", layout: "raid1", disks: ["sda", "sdb"] })).toEqual([expect.stringMatching(/^baremetal\.machines\[0\]\.profile: unknown profile 'nosuch'/)]);
  });

  test("each machine is checked with its own profile", () => {
    const yaml = stringify(
      testLab({
        extra: {
          baremetal: {
            pxe: PXE,
            machines: [
              { name: "ok", mac: MAC, profile: "raid", layout: "raid1", disks: ["sda", "sdb"] },
              { name: "plain", mac: "52:54:00:00:00:02", profile: "metal" },
              { name: "lacking", mac: "52:54:00:00:00:03", profile: "metal", layout: "raid1", disks: ["sda", "sdb"] },
            ],
          },
        },
      }),
    );
    try {
      parseConfig(yaml, "/labs/lab.yaml", { profilesDir });
      throw new Error("the config was accepted");
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^baremetal\.machines\[2\]\.layout: machine lacking has layout raid1, .* profile metal does not install it/)]);
    }
  });

  test("the shipped metal profile has neither mdadm nor ZFS", () => {
    expect(problems({ profile: "metal", layout: "raid1", disks: ["sda", "sdb"] }, SHIPPED_PROFILES)[0]).toContain(
      "machine metal1 has layout raid1, which needs mdadm in its profile, and profile metal does not install it",
    );
  });

  test("the shipped mdadm profile (metal and mdadm) is accepted for raid1", () => {
    expect(lab({ profile: "mdadm", layout: "raid1", disks: ["sda", "sdb"] }, SHIPPED_PROFILES).baremetal.machines[0]).toMatchObject({
      profile: "mdadm",
      layout: "raid1",
      disks: ["/dev/sda", "/dev/sdb"],
    });
  });
});

describe("the table of what each layout needs", () => {
  test("single needs nothing beyond today's deploy environment", () => {
    expect(LAYOUT_NEEDS.single).toEqual({ driver: "single", disks: { min: 1, max: 1 }, packages: [], programs: [], modules: [], data: [], prepared: [] });
  });

  test("what the capture prepares: ZFS's root tar, raid1's BIOS boot partition, once however many machines ask; every name one capture-partitions.sh knows, in its order", () => {
    expect(preparations(["single", "raid1", "zfs-mirror", "raid1", "zfs"])).toEqual(["root-tar", "bios-boot-mdraid"]);
    expect(preparations(["single", "raid1"])).toEqual(["bios-boot-mdraid"]);
    expect(preparations(["single"])).toEqual([]);
    const known = /^PREPARATIONS="([^"]*)"$/m.exec(fs.readFileSync(path.join(PROJECT_DIR, "scripts", "steps", "capture", "prepare.sh"), "utf8"))?.[1];
    expect(known?.split(" ")).toEqual([...PREPARATIONS]);
  });

  test("the deploy environment's layout table: single first, each layout's driver and disk counts, a line per layout", () => {
    expect(layoutTable()).toEqual(["single:single:1:1", "raid1:raid1:2:-", "zfs:zfs:1:1", "zfs-mirror:zfs:2:-"]);
    expect(layoutTable(["zfs-mirror", "single", "zfs-mirror"])).toEqual(["single:single:1:1", "zfs-mirror:zfs:2:-"]);
    // Every driver the table names is a file of deploy-env/layouts.
    for (const entry of layoutTable()) expect(fs.existsSync(path.join(PROJECT_DIR, "deploy-env", "layouts", `${entry.split(":")[1]}.sh`))).toBe(true);
  });

  test("package lines are compared by name: versions, suites and architectures do not matter", () => {
    expect(missingPackages("raid1", ["mdadm:amd64"])).toEqual([]);
    expect(missingPackages("zfs", ["zfs-dkms=2.3.2-1", "zfsutils-linux/trixie-backports"])).toEqual(["zfs-initramfs"]);
    expect(missingPackages("raid1", ["mdadm-udeb"])).toEqual(["mdadm"]);
  });
});
