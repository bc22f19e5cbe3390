// The bare-metal part of the lab config's schema: the PXE server, the machines, their disks
// and BMCs (zod), with the checks one machine can make alone.
import { z } from "zod";
import { LAYOUT_NEEDS, LAYOUTS } from "./layout";
import { absolutePath, cloudConfig, hostname, mac, ownFolder, profileName, wholeDisk } from "./schema-fields";
import { TRANSPORTS } from "./types";

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
    /** The server's transport (baremetal.pxe.transport) for this machine alone. */
    transport: z.enum(TRANSPORTS).optional(),
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

export const baremetalSchema = z
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
        /** How machines get the artifacts: each its own HTTP copy, or one multicast session (udpcast) for all of a profile. */
        transport: z.enum(TRANSPORTS).default("http"),
        multicast: z
          .object({
            /** The first UDP port; each artifact a session on two ports of its own from here. */
            port_base: z.number().int().min(1024).max(65000).default(9000),
            /** A session starts when this many machines joined (default: those that restore its artifact by multicast and are not installed)... */
            min_receivers: z.number().int().min(1).max(1000).optional(),
            /** ...or this many seconds after the first one joined. */
            max_wait: z.number().int().min(1).max(3600).default(60),
            /** Seconds a machine waits for a session before it fetches over HTTP. */
            fallback_after: z.number().int().min(5).max(3600).default(300),
          })
          .strict()
          .default({}),
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
