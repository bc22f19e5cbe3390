// A bare-metal machine's disk layout (baremetal.machines[].layout): how
// the captured partitions go onto its disks. The one table of what each layout
// needs: how many disks, what the machine's profile must install (synth refuses a
// profile without it), what the deploy environment takes from the image and what
// the capture prepares on the build host.
// docs/layouts.md describes the restore of each.

export const LAYOUTS = ["single", "raid1", "zfs", "zfs-mirror"] as const;
export type Layout = (typeof LAYOUTS)[number];

/** The restore driver that writes a layout (deploy-env/layouts/DRIVER.sh). */
export type LayoutDriver = "single" | "raid1" | "zfs";

export interface LayoutNeeds {
  /** The restore driver; zfs makes a mirror of two disks or more. */
  driver: LayoutDriver;
  /** How many disks the machine lists: at least min, at most max (undefined: no limit). */
  disks: { min: number; max?: number };
  /** Debian packages the machine's profile must install: the restored system assembles and boots its root with them. */
  packages: string[];
  /** Programs the deploy environment takes from the image, with their libraries: the same versions the restored system runs. */
  programs: string[];
  /** Kernel modules the deploy environment takes from the image's kernel, beyond its storage and NIC drivers. */
  modules: string[];
  /** Files or folders of the image those programs read, copied to the same path. */
  data: string[];
  /** What the capture prepares on the build host for it (capture-partitions.sh --prepare), the same for every machine. */
  prepared: Preparation[];
}

/**
 * What a capture can prepare on the build host, once for every machine of a layout, in the
 * order it makes them (capture/prepare.sh): root-tar is the root file system's files as a tar
 * (the zfs layouts write each file once from it); bios-boot-mdraid is the BIOS boot partition
 * with the core.img of the image's own GRUB that reads md RAID1 (mdraid1x) and finds /boot by
 * the captured file system's UUID.
 */
export const PREPARATIONS = ["root-tar", "bios-boot-mdraid"] as const;
export type Preparation = (typeof PREPARATIONS)[number];

// ZFS: the module is the one zfs-dkms built for the image's kernel, and zpool/zfs must match it;
// GNU tar unpacks the capture's root-tar with the xattrs (file capabilities) and ACLs that
// busybox's tar drops; zpool reads bpool's compatibility=grub2 from its feature sets; vfat and
// its code pages: grub-install writes the ESP's GRUB that reads bpool.
const ZFS: Omit<LayoutNeeds, "disks"> = {
  driver: "zfs",
  packages: ["zfsutils-linux", "zfs-initramfs", "zfs-dkms"],
  programs: ["zpool", "zfs", "tar"],
  modules: ["zfs", "spl", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"],
  data: ["/usr/share/zfs/compatibility.d"],
  prepared: ["root-tar"],
};

export const LAYOUT_NEEDS: Record<Layout, LayoutNeeds> = {
  single: { driver: "single", disks: { min: 1, max: 1 }, packages: [], programs: [], modules: [], data: [], prepared: [] },
  raid1: {
    driver: "raid1",
    disks: { min: 2 },
    packages: ["mdadm"],
    programs: ["mdadm"],
    modules: ["md_mod", "raid1"],
    data: [],
    prepared: ["bios-boot-mdraid"],
  },
  zfs: { disks: { min: 1, max: 1 }, ...ZFS },
  "zfs-mirror": { disks: { min: 2 }, ...ZFS },
};

/** What the capture of an image prepares for machines of these layouts, in PREPARATIONS' order. */
export function preparations(layouts: readonly Layout[]): Preparation[] {
  const wanted = new Set(layouts.flatMap((layout) => LAYOUT_NEEDS[layout].prepared));
  return PREPARATIONS.filter((name) => wanted.has(name));
}

/** A package line as profiles write it (name, name=version, name/suite, name:arch): its name. */
function packageName(line: string): string {
  return line.split(/[=/:]/)[0];
}

/** The packages a layout needs that the profile's resolved package list lacks, in the table's order. */
export function missingPackages(layout: Layout, profilePackages: string[]): string[] {
  const installed = new Set(profilePackages.map(packageName));
  return LAYOUT_NEEDS[layout].packages.filter((name) => !installed.has(name));
}

/**
 * The layout table as the deploy environment reads it (deploy-env/lib/layout-table.sh): one
 * "NAME:DRIVER:MIN:MAX" entry per layout (MAX "-": no limit), single always first. No shell file
 * restates a layout's name, driver or disk count: build-deploy-initramfs.sh writes these entries
 * into the environment, and tests that run the restore on the host write them with this function.
 */
export function layoutTable(layouts: readonly Layout[] = LAYOUTS): string[] {
  const wanted = ["single" as Layout, ...[...new Set(layouts)].filter((layout) => layout !== "single").sort()];
  return wanted.map((layout) => {
    const { driver, disks } = LAYOUT_NEEDS[layout];
    return `${layout}:${driver}:${disks.min}:${disks.max ?? "-"}`;
  });
}
