// The one place that reads a lab's YAML, applies defaults and validates it.
// Everything downstream receives a typed LabConfig that is already valid.
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { collidingRoute, formatIpv4Net, HostNetworks, ipv4Number, netContains, parseIpv4Net, thisHost } from "./host-network";
import { LAYOUT_NEEDS, LAYOUTS, Layout, missingPackages } from "./layout";
import { ProfileError, readProfile } from "./profile";

export const PROJECT_DIR = path.resolve(__dirname, "..", "..");
export const DEFAULT_CONFIG_PATH = path.join(PROJECT_DIR, "lab.yaml");

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: invalid lab config:\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

// RFC 1123 label: VM names are also hostnames and libvirt object names.
const hostname = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    "must be a valid hostname: 1-63 lowercase letters, digits or '-', not starting or ending with '-'",
  );
const sizeGiB = z.number().int().positive().max(65536);
const memoryMiB = z.number().int().min(256).max(1048576);
const cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, "must be an IPv4 CIDR such as 10.77.0.0/24")
  .refine((value) => {
    const [address, bits] = value.split("/");
    return address.split(".").every((octet) => Number(octet) <= 255) && Number(bits) >= 8 && Number(bits) <= 30;
  }, "must be an IPv4 CIDR with octets <= 255 and a prefix between /8 and /30");
const url = z.string().regex(/^(https?|file):\/\/\S+$/, "must be an http(s):// or file:// URL");
const mac = z
  .string()
  .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, "must be a lowercase MAC address such as 52:54:00:12:34:56");
const cloudConfig = z.record(z.string(), z.unknown());
// Nothing in the config is expanded: `${HOME}` in a path would be a folder of that name
// (and a template to the engine, which cdk.tf.json hands these to as they are).
const noTemplate = (value: string) => !/[$%]\{/.test(value);
const NO_TEMPLATE = "must not contain '${' or '%{': nothing in the lab config is expanded";
// Paths go to scripts, libvirt XML and the engine as written: a blank or control character is a typo.
const absolutePath = z
  .string()
  .startsWith("/", "must be an absolute path")
  .regex(/^[^\s\x00-\x1f\x7f]*$/, "must not contain whitespace or control characters")
  .refine(noTemplate, NO_TEMPLATE);
/** Why a resolved path may not reach scripts and the engine, if it may not. */
function badPath(value: string): string | undefined {
  const result = absolutePath.safeParse(value);
  return result.success ? undefined : result.error.issues[0].message;
}
// Folders the lab creates and removes things in (one subfolder per lab or profile, named by the
// config): never a system folder, where such a name may already be taken.
const SYSTEM_FOLDERS = new Set([
  "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
  "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/lib64",
  "/usr/local", "/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/lib", "/var/lib/libvirt", "/var/log",
  "/var/spool", "/var/tmp",
]);
const ownFolder = absolutePath.superRefine((value, ctx) => {
  const folder = path.posix.normalize(value).replace(/(?<=.)\/+$/, "");
  if (SYSTEM_FOLDERS.has(folder)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must not be the system folder ${folder}: give a folder of its own such as /var/lib/btw-img` });
  }
});
const profileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "must be a profile folder name: letters, digits, '.', '_' or '-'");
// A partition would be overwritten by a whole partition table: the restore takes whole disks only.
const PARTITION = /^\/dev\/((?:[shv]d|xvd)[a-z]+)\d+$|^\/dev\/((?:nvme\d+n|mmcblk|loop|md)\d+)p\d+$|^(\/dev\/disk\/by-(?:id|path)\/.+)-part\d+$/;
// A disk's kernel name (sda, nvme0n1) is the same disk as /dev/sda: the code only sees /dev paths.
const KERNEL_NAME = /^[a-z][a-z0-9]*$/;
const WHOLE_DISK = /^\/dev\/([a-z0-9/]+|disk\/by-(id|path)\/[A-Za-z0-9_.:+@-]+)$/;
const wholeDisk = z.preprocess(
  (value) => (typeof value === "string" && KERNEL_NAME.test(value) ? `/dev/${value}` : value),
  z
    .string()
    .regex(WHOLE_DISK, "must be a whole-disk device such as sda, /dev/nvme0n1, /dev/disk/by-id/... or /dev/disk/by-path/...")
    .superRefine((value, ctx) => {
      if (!WHOLE_DISK.test(value)) return;
      if (value.split("/").some((part) => part === "." || part === "..")) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${value}: '.' and '..' do not name a disk` });
        return;
      }
      const partition = PARTITION.exec(value);
      if (partition) {
        const disk = partition[1] ? `/dev/${partition[1]}` : partition[2] ? `/dev/${partition[2]}` : partition[3];
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${value} is a partition: give the whole disk (${disk})` });
      }
    }),
);

// A path relative to the lab file (or absolute), as written: scripts and the engine get it resolved.
const labRelativePath = z
  .string()
  .min(1)
  .regex(/^[^\s\x00-\x1f\x7f]*$/, "must not contain whitespace or control characters")
  .refine(noTemplate, NO_TEMPLATE);

const vmSchema = z
  .object({
    name: hostname,
    profile: profileName.optional(),
    memory: memoryMiB.optional(),
    vcpus: z.number().int().min(1).max(64).optional(),
    disk: sizeGiB.optional(),
    mac: mac.optional(),
    user_data: cloudConfig.optional(),
    /** Ansible playbooks run against the running VM after readiness (relative to the lab file). */
    playbooks: z.array(labRelativePath).default([]),
    /** A name in hosts; default: the lab's own libvirt.uri. */
    host: hostname.optional(),
  })
  .strict();

const libvirtUri = z
  .string()
  .regex(/^[a-z+]+:\/\/[^\s]*$/, "must be a libvirt URI such as qemu:///system")
  .refine(noTemplate, NO_TEMPLATE);

/** The host every lab has: libvirt.uri with network.*; hosts[] adds others. */
export const DEFAULT_HOST = "default";

const hostSchema = z
  .object({
    name: hostname.refine((value) => value !== DEFAULT_HOST, `'${DEFAULT_HOST}' is the host of libvirt.uri: give another name`),
    uri: libvirtUri,
    // Each host gets a network of its own, like network.* (two daemons on one machine need other names and ranges).
    network: z
      .object({
        name: hostname.optional(),
        cidr: cidr.optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

const octetsValid = (value: string) => value.split(/[.,]/).every((octet) => Number(octet) <= 255);
const ipv4 = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, "must be an IPv4 address such as 10.77.0.1")
  .refine(octetsValid, "must be an IPv4 address with octets <= 255");
const bridgeName = z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, "must be a Linux bridge name such as br50");

/** A machine's disks as the YAML gives them: disk: X is disks: [X]; neither is [] (its only disk). */
function machineDisks(machine: { disk?: string; disks?: string[] }): string[] {
  return machine.disks ?? (machine.disk !== undefined ? [machine.disk] : []);
}

const machineSchema = z
  .object({
    name: hostname,
    mac,
    profile: profileName.optional(),
    /** The one disk to restore onto (as disks: [X]); default: the machine's only disk. */
    disk: wholeDisk.optional(),
    /** The disks the layout uses, in order; default: the machine's only disk. */
    disks: z.array(wholeDisk).optional(),
    layout: z.enum(LAYOUTS).default("single"),
    /** Allow overwriting a disk that holds partitions or data that is not a btw-img install (a reinstall replaces one). */
    wipe: z.boolean().default(false),
    /** How the restored system starts: kexec from the deploy environment where it can, or a reboot. */
    first_boot: z.enum(["kexec", "reboot"]).default("kexec"),
    user_data: cloudConfig.optional(),
  })
  .strict()
  .superRefine((machine, ctx) => {
    if (machine.disk !== undefined && machine.disks !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["disk"], message: "give either disk (one disk) or disks (a list), not both" });
      return;
    }
    const disks = machineDisks(machine);
    const key = machine.disks !== undefined ? "disks" : "disk";
    const { min, max } = LAYOUT_NEEDS[machine.layout].disks;
    if (machine.disks !== undefined && disks.length === 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["disks"], message: "lists no disk: list the disks, or leave the key out for the machine's only disk" });
    } else if (disks.length === 0 && min > 1) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["disks"], message: `is required with layout ${machine.layout}: list at least ${min} disks` });
    } else if (disks.length > 0 && disks.length < min) {
      const hint = key === "disk" ? ": list them under disks" : "";
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `layout ${machine.layout} needs at least ${min} disks, ${disks.length} listed${hint}` });
    } else if (max !== undefined && disks.length > max) {
      const mirror = machine.layout === "zfs" ? "zfs-mirror" : "raid1 or zfs-mirror";
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `layout ${machine.layout} takes ${max} disk, ${disks.length} listed (for a mirror use layout ${mirror})` });
    }
    // The same disk twice would mirror a disk onto itself. (Two names of one disk, sda and its
    // by-id link, can only be told apart on the machine: the restore checks that.)
    const first = new Map<string, number>();
    disks.forEach((disk, index) => {
      const earlier = first.get(disk);
      if (earlier !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["disks", index], message: `${disk} is listed twice (also disks[${earlier}])` });
      } else {
        first.set(disk, index);
      }
    });
  });

const baremetalSchema = z
  .object({
    output_dir: ownFolder.optional(),
    pxe: z
      .object({
        interface: bridgeName.optional(),
        address: ipv4.optional(),
        dhcp_range: z
          .string()
          .regex(/^\d{1,3}(\.\d{1,3}){3},\d{1,3}(\.\d{1,3}){3}$/, "must be 'first,last' IPv4 addresses such as 10.77.0.100,10.77.0.200")
          .refine(octetsValid, "must be IPv4 addresses with octets <= 255")
          .optional(),
        http_port: z.number().int().min(1).max(65535).default(8181),
        state_dir: ownFolder.default("/var/lib/btw-img/pxe"),
      })
      .strict()
      .default({}),
    machines: z.array(machineSchema).default([]),
  })
  .strict()
  .default({});

// Where the engine keeps the lab's state: a local file, or PostgreSQL shared by a team.
// The password never goes in the lab file (it would reach cdk.tf.json and the engine's
// records): PG_CONN_STR holds the whole string, or PGPASSWORD / ~/.pgpass the password.
const connStr = z
  .string()
  .regex(/^postgres(ql)?:\/\/[^\s]*$/, "must be a postgres:// URL such as postgres://btw@db.example.org/btw")
  .refine(noTemplate, NO_TEMPLATE)
  .refine(
    (value) => !/^postgres(ql)?:\/\/[^/@?#]*:[^/@?#]*@/.test(value) && !/[?&]password=/.test(value),
    "must not hold a password: give it in PGPASSWORD or ~/.pgpass, or the whole string in PG_CONN_STR",
  );
const stateSchema = z
  .object({
    backend: z.enum(["local", "pg"]).default("local"),
    /** Default: PG_CONN_STR from the environment. */
    conn_str: connStr.optional(),
    /** Seconds a deploy waits for another one's lock on the lab's state before it gives up. */
    lock_timeout: z.number().int().min(0).max(86400).default(0),
  })
  .strict()
  .default({})
  .superRefine((state, ctx) => {
    if (state.backend !== "pg" && state.conn_str) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["conn_str"], message: "is only for state.backend 'pg'" });
    }
  });

const labSchema = z
  .object({
    name: hostname.default("lab"),
    release: z.enum(["trixie", "bookworm"]),
    image: z
      .object({
        url,
        checksums: url,
      })
      .strict(),
    profile: profileName.default("minimal"),
    /** A profiles folder of the lab's own (relative to the lab file); default: the project's profiles/. */
    profiles_dir: labRelativePath.optional(),
    libvirt: z
      .object({
        uri: libvirtUri.default("qemu:///system"),
        accel: z.enum(["kvm", "tcg"]).default("kvm"),
        firmware: z.enum(["uefi", "uefi-secure", "bios"]).default("uefi"),
        pool_path: ownFolder.default("/var/lib/libvirt/btw-img"),
        // Defaults depend on firmware (OVMF_FILES).
        ovmf_code: absolutePath.optional(),
        ovmf_vars: absolutePath.optional(),
      })
      .strict()
      .default({}),
    network: z
      .object({
        name: hostname,
        mode: z.enum(["nat", "isolated", "bridge"]).default("nat"),
        create: z.boolean().default(true),
        cidr: cidr.optional(),
        bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, "must be a Linux bridge name such as br50").optional(),
      })
      .strict(),
    defaults: z
      .object({
        memory: memoryMiB.default(1024),
        vcpus: z.number().int().min(1).max(64).default(1),
        disk: sizeGiB.default(8),
      })
      .strict()
      .default({}),
    users: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a valid Linux user name"),
            ssh_authorized_keys: z.array(z.string().regex(/^(ssh-|ecdsa-|sk-)\S+ \S+/, "must be an OpenSSH public key line")).default([]),
            sudo: z.boolean().default(true),
          })
          .strict(),
      )
      .default([]),
    readiness: z
      .object({
        timeout: z.number().int().min(30).max(86400).default(1200),
      })
      .strict()
      .default({}),
    state: stateSchema,
    hosts: z.array(hostSchema).default([]),
    vms: z.array(vmSchema).min(1, "must list at least one VM"),
    baremetal: baremetalSchema,
  })
  .strict()
  .superRefine((lab, ctx) => {
    const machineNames = new Map<string, number>();
    lab.baremetal.machines.forEach((machine, index) => {
      const first = machineNames.get(machine.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["baremetal", "machines", index, "name"],
          message: `duplicate machine name '${machine.name}' (also baremetal.machines[${first}].name)`,
        });
      } else {
        machineNames.set(machine.name, index);
      }
    });
    // One MAC per NIC, VMs and machines alike: they may share a bridge, and the PXE server picks a machine by MAC.
    const macHolders = [
      ...lab.vms.map((vm, index) => ({ kind: "VM", mac: vm.mac, path: ["vms", index, "mac"] })),
      ...lab.baremetal.machines.map((machine, index) => ({ kind: "machine", mac: machine.mac, path: ["baremetal", "machines", index, "mac"] })),
    ];
    const firstHolder = new Map<string, string>();
    for (const { kind, mac, path: keyPath } of macHolders) {
      if (!mac) continue;
      const first = firstHolder.get(mac);
      if (first !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: keyPath, message: `duplicate ${kind} mac '${mac}' (also ${first})` });
      } else {
        firstHolder.set(mac, formatPath(keyPath));
      }
    }
    if (lab.baremetal.machines.length > 0) {
      for (const key of ["interface", "address"] as const) {
        if (!lab.baremetal.pxe[key]) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["baremetal", "pxe", key], message: "is required when baremetal.machines is not empty" });
        }
      }
    }
    const hostNames = new Map<string, number>();
    lab.hosts.forEach((host, index) => {
      const first = hostNames.get(host.name);
      if (first !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["hosts", index, "name"], message: `duplicate host name '${host.name}' (also hosts[${first}].name)` });
      } else {
        hostNames.set(host.name, index);
      }
      if (lab.network.mode === "bridge" || !lab.network.create) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["hosts", index], message: "needs network.create: true and a nat or isolated network.mode: each host gets a network of its own" });
      }
    });
    lab.vms.forEach((vm, index) => {
      if (vm.host && !hostNames.has(vm.host)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["vms", index, "host"],
          message: `unknown host '${vm.host}': hosts lists ${lab.hosts.map((host) => `'${host.name}'`).join(", ") || "none"}`,
        });
      }
    });
    const seen = new Map<string, number>();
    lab.vms.forEach((vm, index) => {
      const first = seen.get(vm.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ["vms", index, "name"],
          message: `duplicate VM name '${vm.name}' (also vms[${first}].name)`,
        });
      } else {
        seen.set(vm.name, index);
      }
    });
    if (lab.network.mode === "bridge" && !lab.network.bridge) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["network", "bridge"], message: "is required when network.mode is 'bridge'" });
    }
    if (lab.network.mode !== "bridge" && lab.network.create && !lab.network.cidr) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["network", "cidr"], message: "is required to create a nat or isolated network" });
    }
  });

/** The config as the YAML has it (snake_case keys), with the schema's defaults. */
type LabInput = z.output<typeof labSchema>;

// What the rest of the code receives (toLabConfig): camelCase names, every default
// applied. Messages name keys as the YAML spells them (libvirt.pool_path).

export type Firmware = "uefi" | "uefi-secure" | "bios";

/**
 * Debian's OVMF builds (package ovmf): plain, and with Secure Boot enforced and
 * Microsoft's keys enrolled (what PCs ship with; it needs q35 with SMM).
 */
export const OVMF_FILES: Record<Exclude<Firmware, "bios">, { code: string; vars: string }> = {
  uefi: { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
  "uefi-secure": { code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" },
};

/** Firmware that starts only signed code: what it boots must have no unsigned kernel or kernel module. */
export function enforcesSecureBoot(firmware: Firmware): boolean {
  return firmware === "uefi-secure";
}

export interface LibvirtConfig {
  uri: string;
  accel: "kvm" | "tcg";
  firmware: Firmware;
  /** The lab's pool is the folder <poolPath>/<lab name>. */
  poolPath: string;
  ovmfCode: string;
  ovmfVars: string;
}

export interface NetworkConfig {
  name: string;
  mode: "nat" | "isolated" | "bridge";
  create: boolean;
  cidr?: string;
  bridge?: string;
}

export interface UserConfig {
  name: string;
  sshAuthorizedKeys: string[];
  sudo: boolean;
}

export interface PxeConfig {
  interface?: string;
  address?: string;
  /** Without it, the server is a proxy DHCP beside the LAN's own DHCP server. */
  dhcpRange?: string;
  httpPort: number;
  /** Holds each lab's server folder (lib/config/names.ts). */
  stateDir: string;
}

export interface MachineConfig {
  name: string;
  mac: string;
  profile: string;
  /** Whole disks as /dev paths, in order (disk: X is [X]); empty: the machine's only disk, which the deploy environment finds. */
  disks: string[];
  layout: Layout;
  wipe: boolean;
  firstBoot: "kexec" | "reboot";
  userData: Record<string, unknown>;
}

export interface BaremetalConfig {
  /** Artifacts of each profile go to <outputDir>/<profile>. */
  outputDir: string;
  pxe: PxeConfig;
  machines: MachineConfig[];
}

export interface VmConfig {
  name: string;
  /** The name of its host (DEFAULT_HOST: libvirt.uri). */
  host: string;
  profile: string;
  memory: number;
  vcpus: number;
  disk: number;
  mac?: string;
  userData: Record<string, unknown>;
  /** Absolute paths of the playbooks run against the VM after readiness, in order. */
  playbooks: string[];
}

export interface StateConfig {
  backend: "local" | "pg";
  /** A connection string without a password; undefined: the engine reads PG_CONN_STR. */
  connStr?: string;
  lockTimeout: number;
}

/** A libvirt connection the lab's VMs run on; each has its own pool, network and base volumes. */
export interface HostConfig {
  name: string;
  uri: string;
  network: NetworkConfig;
}

export interface LabConfig {
  sourceFile: string;
  name: string;
  release: "trixie" | "bookworm";
  image: { url: string; checksums: string };
  profile: string;
  libvirt: LibvirtConfig;
  network: NetworkConfig;
  users: UserConfig[];
  readiness: { timeout: number };
  state: StateConfig;
  /** DEFAULT_HOST (libvirt.uri, network) first, then hosts[]. */
  hosts: HostConfig[];
  vms: VmConfig[];
  baremetal: BaremetalConfig;
  profilesDir: string;
  cacheDir: string;
}

function formatPath(keyPath: (string | number)[]): string {
  return keyPath.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${key}` : key), "");
}

function describeIssue(issue: z.ZodIssue): string {
  const where = formatPath(issue.path) || "(top level)";
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    return `${where}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
  }
  if (issue.code === z.ZodIssueCode.invalid_type) {
    return issue.received === "undefined" ? `${where}: is required` : `${where}: expected ${issue.expected}, got ${issue.received}`;
  }
  if (issue.code === z.ZodIssueCode.invalid_enum_value) {
    return `${where}: '${String(issue.received)}' is not one of ${issue.options.map((o) => `'${String(o)}'`).join(", ")}`;
  }
  return `${where}: ${issue.message}`;
}

function defaultCacheDir(): string {
  return process.env.BTW_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(process.env.HOME || "/root", ".cache"), "btw-img");
}

export interface LoadOptions {
  profilesDir?: string;
  cacheDir?: string;
  /** The host the lab's networks are checked against (default: this one). */
  host?: HostNetworks;
}

/**
 * Checks against the networks the host already has: a network the lab creates must
 * not overlap one the host routes, and a PXE DHCP range must lie in the subnet of the
 * PXE address (the lab network's, or the one routed on the PXE bridge).
 */
function hostNetworkProblems(lab: LabConfig, host: HostNetworks): string[] {
  const problems: string[] = [];
  const { network, libvirt } = lab;
  // The host's routes say nothing about a remote libvirt (qemu+ssh://host/...).
  const localLibvirt = /^[a-z+]+:\/\/\//.test(libvirt.uri);
  if (network.cidr && network.mode !== "bridge" && network.create && localLibvirt) {
    const route = collidingRoute(network.cidr, { uri: libvirt.uri, name: network.name }, host);
    if (route) problems.push(`network.cidr: ${network.cidr} overlaps ${formatIpv4Net(route.net)}, which the host already routes ('${route.line}'): choose a free range`);
  }
  const { pxe } = lab.baremetal;
  if (pxe.dhcpRange && pxe.address) {
    // Without a subnet holding the address (its bridge not set up yet) only the order is checked.
    const subnets = [
      ...(network.cidr ? [{ net: parseIpv4Net(network.cidr), from: "network.cidr" }] : []),
      ...host
        .routes()
        .filter((route) => pxe.interface && route.dev === pxe.interface && !route.via)
        .map((route) => ({ net: route.net, from: `routed on ${pxe.interface}` })),
    ];
    const subnet = subnets.find(({ net }) => netContains(net, ipv4Number(pxe.address as string)));
    const [first, last] = pxe.dhcpRange.split(",");
    const outside = subnet ? [first, last].filter((end) => !netContains(subnet.net, ipv4Number(end))) : [];
    if (subnet && outside.length > 0) {
      problems.push(
        `baremetal.pxe.dhcp_range: ${outside.join(" and ")} ${outside.length > 1 ? "are" : "is"} outside ${formatIpv4Net(subnet.net)}, the subnet of baremetal.pxe.address ${pxe.address} (${subnet.from})`,
      );
    } else if (ipv4Number(first) > ipv4Number(last)) {
      problems.push(`baremetal.pxe.dhcp_range: the first address ${first} comes after the last ${last}`);
    }
  }
  return problems;
}

export function parseConfig(text: string, sourceFile: string, options: LoadOptions = {}): LabConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sourceFile,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ""}YAML error: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  const result = labSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(sourceFile, result.error.issues.map(describeIssue));
  }
  const lab = result.data;
  const profilesDir =
    options.profilesDir ?? (lab.profiles_dir ? path.resolve(path.dirname(sourceFile), lab.profiles_dir) : path.join(PROJECT_DIR, "profiles"));
  if (lab.profiles_dir && !fs.existsSync(profilesDir)) {
    throw new ConfigError(sourceFile, [`profiles_dir: folder ${profilesDir} does not exist`]);
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const config = toLabConfig(lab, sourceFile, profilesDir, cacheDir);
  const problems: string[] = [];
  config.vms.forEach((vm, index) =>
    vm.playbooks.forEach((playbook, position) => {
      const where = `vms[${index}].playbooks[${position}]`;
      const stat = fs.statSync(playbook, { throwIfNoEntry: false });
      if (!stat) problems.push(`${where}: ${playbook} does not exist`);
      else if (!stat.isFile()) problems.push(`${where}: ${playbook} is not a file (give the playbook's .yml; its roles and vars go beside it)`);
      else if (badPath(playbook)) problems.push(`${where}: ${playbook} (resolved from the lab file's folder): ${badPath(playbook)}`);
      // Its folder is what the deploy fingerprints (roles, vars): it must not hold the lab's own files (cdktf.out, state).
      else if (!path.relative(path.dirname(playbook), path.dirname(sourceFile)).startsWith("..")) {
        problems.push(`${where}: ${playbook} is in the lab file's folder (or above it): put each playbook in a folder of its own, with its roles and vars, e.g. playbooks/site.yml`);
      }
    }),
  );
  // Resolved here (chain, layout, releases) so that a bad profile names the key that uses it.
  const checkProfile = (name: string, where: string) => {
    try {
      const profile = readProfile(profilesDir, name, lab.release);
      if (profile.noSecureBoot && enforcesSecureBoot(lab.libvirt.firmware)) {
        problems.push(`${where}: ${profile.noSecureBoot}, and libvirt.firmware is uefi-secure (use uefi or bios)`);
      }
    } catch (error) {
      if (!(error instanceof ProfileError)) throw error;
      problems.push(`${where}: ${error.message}`);
    }
  };
  checkProfile(lab.profile, "profile");
  lab.vms.forEach((vm, index) => vm.profile && checkProfile(vm.profile, `vms[${index}].profile`));
  lab.baremetal.machines.forEach((machine, index) => machine.profile && checkProfile(machine.profile, `baremetal.machines[${index}].profile`));
  // A layout's restored system assembles and boots its root with packages its profile must install.
  config.baremetal.machines.forEach((machine, index) => {
    if (LAYOUT_NEEDS[machine.layout].packages.length === 0) return;
    let packages: string[];
    try {
      packages = readProfile(profilesDir, machine.profile, lab.release).packages;
    } catch (error) {
      if (error instanceof ProfileError) return; // named above, by the key that chose the profile
      throw error;
    }
    const missing = missingPackages(machine.layout, packages);
    if (missing.length > 0) {
      problems.push(
        `baremetal.machines[${index}].layout: machine ${machine.name} has layout ${machine.layout}, which needs ${missing.join(", ")} in its profile, ` +
          `and profile ${machine.profile} does not install ${missing.length > 1 ? "them" : "it"} (add ${missing.length > 1 ? "them" : "it"} to an install.d list of the profile or a profile it extends)`,
      );
    }
  });
  problems.push(...hostNetworkProblems(config, options.host ?? thisHost));
  if (problems.length > 0) throw new ConfigError(sourceFile, problems);
  // Like the config's own paths, the cache folder reaches scripts and the engine as written.
  const badCacheDir = absolutePath.safeParse(cacheDir);
  if (!badCacheDir.success) {
    throw new ConfigError(sourceFile, [`the cache folder ${cacheDir} (BTW_CACHE_DIR): ${badCacheDir.error.issues[0].message}`]);
  }
  return config;
}

/** The one place YAML keys become the names the code uses. */
function toLabConfig(lab: LabInput, sourceFile: string, profilesDir: string, cacheDir: string): LabConfig {
  const { libvirt, baremetal } = lab;
  const { pxe } = baremetal;
  return {
    sourceFile,
    name: lab.name,
    release: lab.release,
    image: lab.image,
    profile: lab.profile,
    libvirt: {
      uri: libvirt.uri,
      accel: libvirt.accel,
      firmware: libvirt.firmware,
      poolPath: libvirt.pool_path,
      ovmfCode: libvirt.ovmf_code ?? OVMF_FILES[libvirt.firmware === "bios" ? "uefi" : libvirt.firmware].code,
      ovmfVars: libvirt.ovmf_vars ?? OVMF_FILES[libvirt.firmware === "bios" ? "uefi" : libvirt.firmware].vars,
    },
    network: lab.network,
    users: lab.users.map((user) => ({ name: user.name, sshAuthorizedKeys: user.ssh_authorized_keys, sudo: user.sudo })),
    readiness: lab.readiness,
    state: { backend: lab.state.backend, connStr: lab.state.conn_str, lockTimeout: lab.state.lock_timeout },
    hosts: [
      { name: DEFAULT_HOST, uri: libvirt.uri, network: lab.network },
      ...lab.hosts.map((host) => ({
        name: host.name,
        uri: host.uri,
        network: { ...lab.network, name: host.network.name ?? `${lab.network.name}-${host.name}`, cidr: host.network.cidr ?? lab.network.cidr },
      })),
    ],
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      host: vm.host ?? DEFAULT_HOST,
      profile: vm.profile ?? lab.profile,
      memory: vm.memory ?? lab.defaults.memory,
      vcpus: vm.vcpus ?? lab.defaults.vcpus,
      disk: vm.disk ?? lab.defaults.disk,
      mac: vm.mac,
      userData: vm.user_data ?? {},
      playbooks: vm.playbooks.map((playbook) => path.resolve(path.dirname(sourceFile), playbook)),
    })),
    baremetal: {
      outputDir: baremetal.output_dir ?? path.join(cacheDir, "artifacts", lab.name),
      pxe: { interface: pxe.interface, address: pxe.address, dhcpRange: pxe.dhcp_range, httpPort: pxe.http_port, stateDir: pxe.state_dir },
      machines: baremetal.machines.map((machine) => ({
        name: machine.name,
        mac: machine.mac,
        profile: machine.profile ?? lab.profile,
        disks: machineDisks(machine),
        layout: machine.layout,
        wipe: machine.wipe,
        firstBoot: machine.first_boot,
        userData: machine.user_data ?? {},
      })),
    },
    profilesDir,
    cacheDir,
  };
}

export function loadConfig(file: string = process.env.BTW_CONFIG || DEFAULT_CONFIG_PATH, options: LoadOptions = {}): LabConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, "utf8");
  } catch (error) {
    throw new ConfigError(absolute, [`cannot read the file: ${(error as Error).message} (set BTW_CONFIG to a lab YAML file)`]);
  }
  return parseConfig(text, absolute, options);
}
