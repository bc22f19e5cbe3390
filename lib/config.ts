// The one place that reads a lab's YAML, applies defaults and validates it.
// Everything downstream receives a typed LabConfig that is already valid.
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { listProfiles } from "./profile";

export const PROJECT_DIR = path.resolve(__dirname, "..");
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

const vmSchema = z
  .object({
    name: hostname,
    profile: z.string().optional(),
    memory: memoryMiB.optional(),
    vcpus: z.number().int().min(1).max(64).optional(),
    disk: sizeGiB.optional(),
    mac: mac.optional(),
    user_data: cloudConfig.optional(),
  })
  .strict();

const ipv4 = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, "must be an IPv4 address such as 10.77.0.1")
  .refine((value) => value.split(".").every((octet) => Number(octet) <= 255), "must be an IPv4 address with octets <= 255");
const bridgeName = z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, "must be a Linux bridge name such as br50");

const machineSchema = z
  .object({
    name: hostname,
    mac,
    profile: z.string().optional(),
    /** Whole disk to restore onto; default: the machine's only disk. */
    disk: z.string().regex(/^\/dev\/[a-z0-9/]+$/, "must be a whole-disk device such as /dev/sda or /dev/nvme0n1").optional(),
    /** Allow overwriting a disk that holds partitions or data. */
    wipe: z.boolean().default(false),
    user_data: cloudConfig.optional(),
  })
  .strict();

const baremetalSchema = z
  .object({
    output_dir: z.string().startsWith("/", "must be an absolute path").optional(),
    pxe: z
      .object({
        interface: bridgeName.optional(),
        address: ipv4.optional(),
        dhcp_range: z
          .string()
          .regex(/^\d{1,3}(\.\d{1,3}){3},\d{1,3}(\.\d{1,3}){3}$/, "must be 'first,last' IPv4 addresses such as 10.77.0.100,10.77.0.200")
          .optional(),
        http_port: z.number().int().min(1).max(65535).default(8181),
        state_dir: z.string().startsWith("/", "must be an absolute path").default("/var/lib/btw-img/pxe"),
      })
      .strict()
      .default({}),
    machines: z.array(machineSchema).default([]),
  })
  .strict()
  .default({});

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
    profile: z.string().default("minimal"),
    libvirt: z
      .object({
        uri: z.string().regex(/^[a-z+]+:\/\/[^\s]*$/, "must be a libvirt URI such as qemu:///system").default("qemu:///system"),
        accel: z.enum(["kvm", "tcg"]).default("kvm"),
        firmware: z.enum(["uefi", "bios"]).default("uefi"),
        pool_path: z.string().startsWith("/", "must be an absolute path").default("/var/lib/libvirt/btw-img"),
        ovmf_code: z.string().startsWith("/", "must be an absolute path").default("/usr/share/OVMF/OVMF_CODE_4M.fd"),
        ovmf_vars: z.string().startsWith("/", "must be an absolute path").default("/usr/share/OVMF/OVMF_VARS_4M.fd"),
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
    vms: z.array(vmSchema).min(1, "must list at least one VM"),
    baremetal: baremetalSchema,
  })
  .strict()
  .superRefine((lab, ctx) => {
    const machineNames = new Map<string, number>();
    const machineMacs = new Map<string, number>();
    lab.baremetal.machines.forEach((machine, index) => {
      for (const [key, seen] of [["name", machineNames], ["mac", machineMacs]] as const) {
        const first = seen.get(machine[key]);
        if (first !== undefined) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ["baremetal", "machines", index, key],
            message: `duplicate machine ${key} '${machine[key]}' (also baremetal.machines[${first}].${key})`,
          });
        } else {
          seen.set(machine[key], index);
        }
      }
    });
    if (lab.baremetal.machines.length > 0) {
      for (const key of ["interface", "address"] as const) {
        if (!lab.baremetal.pxe[key]) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["baremetal", "pxe", key], message: "is required when baremetal.machines is not empty" });
        }
      }
    }
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

type LabInput = z.output<typeof labSchema>;
export type VmInput = z.output<typeof vmSchema>;

export interface MachineConfig {
  name: string;
  mac: string;
  profile: string;
  disk?: string;
  wipe: boolean;
  userData: Record<string, unknown>;
}

export interface BaremetalConfig {
  /** Artifacts of each profile go to <outputDir>/<profile>. */
  outputDir: string;
  pxe: LabInput["baremetal"]["pxe"];
  machines: MachineConfig[];
}

export interface VmConfig {
  name: string;
  profile: string;
  memory: number;
  vcpus: number;
  disk: number;
  mac?: string;
  userData: Record<string, unknown>;
}

export interface LabConfig {
  sourceFile: string;
  name: string;
  release: "trixie" | "bookworm";
  image: { url: string; checksums: string };
  profile: string;
  libvirt: LabInput["libvirt"];
  network: LabInput["network"];
  users: LabInput["users"];
  readiness: LabInput["readiness"];
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

export function defaultCacheDir(): string {
  return process.env.BTW_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(process.env.HOME || "/root", ".cache"), "btw-img");
}

export interface LoadOptions {
  profilesDir?: string;
  cacheDir?: string;
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
  const profilesDir = options.profilesDir ?? path.join(PROJECT_DIR, "profiles");
  const known = listProfiles(profilesDir);
  const problems: string[] = [];
  const checkProfile = (name: string, where: string) => {
    if (!known.includes(name)) {
      problems.push(`${where}: unknown profile '${name}' (profiles in ${profilesDir}: ${known.join(", ") || "none"})`);
    }
  };
  checkProfile(lab.profile, "profile");
  lab.vms.forEach((vm, index) => vm.profile && checkProfile(vm.profile, `vms[${index}].profile`));
  lab.baremetal.machines.forEach((machine, index) => machine.profile && checkProfile(machine.profile, `baremetal.machines[${index}].profile`));
  if (problems.length > 0) throw new ConfigError(sourceFile, problems);
  const cacheDir = options.cacheDir ?? defaultCacheDir();

  return {
    sourceFile,
    name: lab.name,
    release: lab.release,
    image: lab.image,
    profile: lab.profile,
    libvirt: lab.libvirt,
    network: lab.network,
    users: lab.users,
    readiness: lab.readiness,
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      profile: vm.profile ?? lab.profile,
      memory: vm.memory ?? lab.defaults.memory,
      vcpus: vm.vcpus ?? lab.defaults.vcpus,
      disk: vm.disk ?? lab.defaults.disk,
      mac: vm.mac,
      userData: vm.user_data ?? {},
    })),
    baremetal: {
      outputDir: lab.baremetal.output_dir ?? path.join(cacheDir, "artifacts", lab.name),
      pxe: lab.baremetal.pxe,
      machines: lab.baremetal.machines.map((machine) => ({
        name: machine.name,
        mac: machine.mac,
        profile: machine.profile ?? lab.profile,
        disk: machine.disk,
        wipe: machine.wipe,
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
