// The lab config's schema: what the YAML may say, its defaults and the checks one
// key or one list can make alone (zod). lib/config/config.ts parses with it and
// turns its output (LabInput, snake_case as the YAML) into a LabConfig.
import * as path from "path";
import { z } from "zod";
import { LAYOUT_NEEDS, LAYOUTS } from "./layout";

/** A key path as the YAML spells it: vms[0].name. */
export function formatPath(keyPath: (string | number)[]): string {
  return keyPath.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${key}` : key), "");
}

// RFC 1123 label: VM names are also hostnames and libvirt object names.

const hostname = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a valid hostname: 1-63 lowercase letters, digits or '-', not starting or ending with '-'");
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
const mac = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, "must be a lowercase MAC address such as 52:54:00:12:34:56");
const cloudConfig = z.record(z.string(), z.unknown());
// Nothing in the config is expanded: `${HOME}` in a path would be a folder of that name
// (and a template to the engine, which cdk.tf.json hands these to as they are).
const noTemplate = (value: string) => !/[$%]\{/.test(value);
const NO_TEMPLATE = "must not contain '${' or '%{': nothing in the lab config is expanded";
// Paths go to scripts, libvirt XML and the engine as written: a blank or control character is a typo.
export const absolutePath = z
  .string()
  .startsWith("/", "must be an absolute path")
  // eslint-disable-next-line no-control-regex -- it refuses control characters, so it names them
  .regex(/^[^\s\x00-\x1f\x7f]*$/, "must not contain whitespace or control characters")
  .refine(noTemplate, NO_TEMPLATE);
/** Why a resolved path may not reach scripts and the engine, if it may not. */
export function badPath(value: string): string | undefined {
  const result = absolutePath.safeParse(value);
  return result.success ? undefined : result.error.issues[0].message;
}
// Folders the lab creates and removes things in (one subfolder per lab or profile, named by the
// config): never a system folder, where such a name may already be taken.
const SYSTEM_FOLDERS = new Set([
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/home",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/usr",
  "/usr/bin",
  "/usr/lib",
  "/usr/lib64",
  "/usr/local",
  "/usr/sbin",
  "/usr/share",
  "/var",
  "/var/cache",
  "/var/lib",
  "/var/lib/libvirt",
  "/var/log",
  "/var/spool",
  "/var/tmp",
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
  // eslint-disable-next-line no-control-regex -- it refuses control characters, so it names them
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
export function machineDisks(machine: { disk?: string; disks?: string[] }): string[] {
  return machine.disks ?? (machine.disk !== undefined ? [machine.disk] : []);
}

// A machine's BMC: how btw powers it and sets a one-time network boot. The password is never in
// the config (nor then in the plan or the state): the environment variable or the file (mode 0600,
// root's) it is read from when a command needs it.
const bmcSchema = z
  .object({
    driver: z.enum(["ipmi", "redfish"]),
    /** The BMC's address, host or host:port (IPMI over LAN: UDP 623; Redfish: HTTPS, 443). */
    address: z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be a host name or IPv4 address, with :port optionally"),
    username: z.string().regex(/^[A-Za-z0-9._@-]{1,32}$/, "must be a BMC user name: letters, digits, '._@-', at most 32"),
    password_env: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, "must be the name of an environment variable, such as BMC_PASSWORD")
      .optional(),
    password_file: absolutePath.optional(),
    /** The firmware mode of the one-time network boot; default: the mode the BMC has set. */
    firmware: z.enum(["uefi", "bios"]).optional(),
    /** ipmi: the IPMI 2.0 cipher suite (3: SHA1 with AES, 17: SHA256 with AES); default: the one ipmitool finds the BMC offers. */
    cipher_suite: z.number().int().min(0).max(17).optional(),
    /** redfish: the Id of the machine's member of /redfish/v1/Systems; default: the only member. */
    system: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, "must be a Redfish system Id, such as 1 or System.Embedded.1")
      .optional(),
    /** redfish: the CA certificate (PEM) that signed the BMC's TLS certificate; default: the host's trusted CAs. */
    ca_file: absolutePath.optional(),
    /** redfish: true to skip TLS verification (anyone on the path could then take the password). */
    tls_insecure: z.literal(true).optional(),
  })
  .strict()
  .superRefine((bmc, ctx) => {
    if ((bmc.password_env === undefined) === (bmc.password_file === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["password_env"], message: "give the password's source: password_env (a variable's name) or password_file (a 0600 file), one of them" });
    }
    const only = { cipher_suite: "ipmi", system: "redfish", ca_file: "redfish", tls_insecure: "redfish" } as const;
    for (const [key, driver] of Object.entries(only)) {
      if (bmc[key as keyof typeof only] !== undefined && bmc.driver !== driver) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `is a key of driver ${driver}, not ${bmc.driver}` });
      }
    }
    if (bmc.ca_file !== undefined && bmc.tls_insecure) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls_insecure"], message: "verifies nothing: give ca_file or tls_insecure, not both" });
    }
  });

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
    bmc: bmcSchema.optional(),
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
    /** Machines with a BMC: seconds without a report from the machine before a power cycle retries its install. */
    report_timeout: z.number().int().min(1).max(86400).default(900),
    /** Machines with a BMC: power cycles before its install is marked failed. */
    power_retries: z.number().int().min(0).max(10).default(2),
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

export const labSchema = z
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
        bridge: z
          .string()
          .regex(/^[a-zA-Z0-9_.-]{1,15}$/, "must be a Linux bridge name such as br50")
          .optional(),
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
export type LabInput = z.output<typeof labSchema>;
