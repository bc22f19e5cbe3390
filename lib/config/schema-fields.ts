// The lab config's field types: names, sizes, addresses, paths and disks, each with the
// message a wrong value gets (zod). The schemas (lib/config/schema.ts, schema-baremetal.ts) are made of them.
import * as path from "path";
import { z } from "zod";

// RFC 1123 label: VM names are also hostnames and libvirt object names.

export const hostname = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a valid hostname: 1-63 lowercase letters, digits or '-', not starting or ending with '-'");
export const sizeGiB = z.number().int().positive().max(65536);
export const memoryMiB = z.number().int().min(256).max(1048576);
export const cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, "must be an IPv4 CIDR such as 10.77.0.0/24")
  .refine((value) => {
    const [address, bits] = value.split("/");
    return address.split(".").every((octet) => Number(octet) <= 255) && Number(bits) >= 8 && Number(bits) <= 30;
  }, "must be an IPv4 CIDR with octets <= 255 and a prefix between /8 and /30");
export const url = z.string().regex(/^(https?|file):\/\/\S+$/, "must be an http(s):// or file:// URL");
export const mac = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, "must be a lowercase MAC address such as 52:54:00:12:34:56");
export const cloudConfig = z.record(z.string(), z.unknown());
// Nothing in the config is expanded: `${HOME}` in a path would be a folder of that name
// (and a template to the engine, which cdk.tf.json hands these to as they are).
export const noTemplate = (value: string) => !/[$%]\{/.test(value);
export const NO_TEMPLATE = "must not contain '${' or '%{': nothing in the lab config is expanded";
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
export const ownFolder = absolutePath.superRefine((value, ctx) => {
  const folder = path.posix.normalize(value).replace(/(?<=.)\/+$/, "");
  if (SYSTEM_FOLDERS.has(folder)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must not be the system folder ${folder}: give a folder of its own such as /var/lib/btw-img` });
  }
});
export const profileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "must be a profile folder name: letters, digits, '.', '_' or '-'");
// A partition would be overwritten by a whole partition table: the restore takes whole disks only.
const PARTITION = /^\/dev\/((?:[shv]d|xvd)[a-z]+)\d+$|^\/dev\/((?:nvme\d+n|mmcblk|loop|md)\d+)p\d+$|^(\/dev\/disk\/by-(?:id|path)\/.+)-part\d+$/;
// A disk's kernel name (sda, nvme0n1) is the same disk as /dev/sda: the code only sees /dev paths.
const KERNEL_NAME = /^[a-z][a-z0-9]*$/;
const WHOLE_DISK = /^\/dev\/([a-z0-9/]+|disk\/by-(id|path)\/[A-Za-z0-9_.:+@-]+)$/;
export const wholeDisk = z.preprocess(
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
export const labRelativePath = z
  .string()
  .min(1)
  // eslint-disable-next-line no-control-regex -- it refuses control characters, so it names them
  .regex(/^[^\s\x00-\x1f\x7f]*$/, "must not contain whitespace or control characters")
  .refine(noTemplate, NO_TEMPLATE);
