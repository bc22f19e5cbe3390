// The lab config's schema: what the YAML may say, its defaults and the checks one
// key or one list can make alone (zod). lib/config/config.ts parses with it and
// turns its output (LabInput, snake_case as the YAML) into a LabConfig. Its field
// types are in schema-fields.ts, its bare-metal part in schema-baremetal.ts.
import { z } from "zod";
import { baremetalSchema } from "./schema-baremetal";
import { absolutePath, cidr, cloudConfig, hostname, labRelativePath, mac, memoryMiB, NO_TEMPLATE, noTemplate, ownFolder, profileName, sizeGiB, url } from "./schema-fields";

export { absolutePath, badPath } from "./schema-fields";
export { machineDisks } from "./schema-baremetal";

/** A key path as the YAML spells it: vms[0].name. */
export function formatPath(keyPath: (string | number)[]): string {
  return keyPath.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${key}` : key), "");
}

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
