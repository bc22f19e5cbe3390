// Renders a machine's cloud-init NoCloud data from the lab config and the
// templates in cloud-init/. Pure functions: the same config gives the same bytes.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { LabConfig, PROJECT_DIR, VmConfig } from "./config";
import { instanceId } from "./names";

export interface SeedFiles {
  userData: string;
  metaData: string;
  networkConfig: string;
}

const TEMPLATE_DIR = path.join(PROJECT_DIR, "cloud-init");
// Keys whose lists add up rather than replace when the VM's user_data is merged.
const APPENDED_KEYS = new Set(["runcmd", "bootcmd", "write_files", "packages", "users", "ssh_authorized_keys"]);

function readTemplate(name: string): Record<string, unknown> {
  return (parse(fs.readFileSync(path.join(TEMPLATE_DIR, name), "utf8")) ?? {}) as Record<string, unknown>;
}

/**
 * What a seed's state may keep of a cloud-config instead of its text (which may hold
 * secrets): each top-level key with the number of lines its block spans. Enough to say
 * which keys a change touched, nothing of any value.
 */
export function cloudConfigShape(text: string): Record<string, number> {
  const shape: Record<string, number> = {};
  let key: string | undefined;
  for (const line of text.split("\n")) {
    const top = /^([A-Za-z0-9_-]+):/.exec(line)?.[1];
    if (top) key = top;
    if (key && line.trim() && !line.startsWith("#")) shape[key] = (shape[key] ?? 0) + 1;
  }
  return shape;
}

/** The sha256 of a seed's text: what state keeps to see that it changed. */
export function seedTextSha256(text: string): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/** Merges extra over base: APPENDED_KEYS' lists add up, objects merge key by key, anything else from extra replaces base's. */
export function mergeCloudConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = merged[key];
    if (APPENDED_KEYS.has(key) && Array.isArray(current) && Array.isArray(value)) {
      merged[key] = [...current, ...value];
    } else if (isPlainObject(current) && isPlainObject(value)) {
      merged[key] = mergeCloudConfig(current, value);
    } else {
      merged[key] = value;
    }
  }
  return merged;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What a seed depends on: a lab VM and a bare-metal machine both have these. */
export type SeedSubject = Pick<VmConfig, "name" | "userData">;

function renderUserData(lab: LabConfig, vm: SeedSubject): string {
  const users = lab.users.map((user) => ({
    name: user.name,
    shell: "/bin/bash",
    lock_passwd: true,
    ...(user.sudo ? { sudo: "ALL=(ALL) NOPASSWD:ALL", groups: ["sudo"] } : {}),
    ...(user.sshAuthorizedKeys.length > 0 ? { ssh_authorized_keys: user.sshAuthorizedKeys } : {}),
  }));
  const base = mergeCloudConfig(readTemplate("user-data.yaml"), {
    hostname: vm.name,
    preserve_hostname: false,
    manage_etc_hosts: true,
    ...(users.length > 0 ? { users } : {}),
  });
  return "#cloud-config\n" + stringify(mergeCloudConfig(base, vm.userData), { lineWidth: 0 });
}

export function renderSeed(lab: LabConfig, vm: SeedSubject): SeedFiles {
  const userData = renderUserData(lab, vm);
  const networkConfig = stringify(readTemplate("network-config.yaml"));
  // A new instance-id whenever the seed changes makes cloud-init apply it again.
  const seedHash = crypto.createHash("sha256").update(userData).update(networkConfig).digest("hex").slice(0, 12);
  const metaData = stringify({ "instance-id": instanceId(lab.name, vm.name, seedHash), "local-hostname": vm.name });
  return { userData, metaData, networkConfig };
}
