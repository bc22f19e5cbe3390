// Profiles are folders of plain files (see profiles/README.md). This module
// reads them only to validate and fingerprint them; scripts/customize-image.sh
// is what applies them.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

const ALLOWED_TOP = new Set(["install.d", "commands.d", "files", "apt-sources.d", "extends", "releases", "README.md"]);
const ALLOWED_IN: Record<string, RegExp> = {
  "install.d": /^[A-Za-z0-9_.-]+\.list$/,
  "commands.d": /^[0-9]{2}-[A-Za-z0-9_.-]+\.sh$/,
  "apt-sources.d": /^[A-Za-z0-9_.-]+\.sources$/,
};

export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProfileError";
  }
}

export function listProfiles(profilesDir: string): string[] {
  if (!fs.existsSync(profilesDir)) return [];
  return fs
    .readdirSync(profilesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

function readLines(file: string): string[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line.length > 0);
}

/** Checks that a profile folder holds only files we understand. */
export function validateProfileFolder(profilesDir: string, name: string): void {
  const dir = path.join(profilesDir, name);
  if (!fs.existsSync(dir)) {
    throw new ProfileError(`unknown profile '${name}' (profiles in ${profilesDir}: ${listProfiles(profilesDir).join(", ") || "none"})`);
  }
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const unexpected = () =>
      new ProfileError(
        `profile ${name}: unexpected file ${entry.name} (expected install.d/*.list, commands.d/NN-*.sh, files/, apt-sources.d/*.sources, extends, releases, README.md)`,
      );
    if (!ALLOWED_TOP.has(entry.name)) throw unexpected();
    const pattern = ALLOWED_IN[entry.name];
    if (pattern) {
      if (!entry.isDirectory()) throw unexpected();
      for (const inner of fs.readdirSync(path.join(dir, entry.name))) {
        if (!pattern.test(inner)) {
          throw new ProfileError(
            `profile ${name}: unexpected file ${entry.name}/${inner} (expected ${entry.name === "commands.d" ? "NN-name.sh" : pattern.source})`,
          );
        }
      }
    }
  }
}

/** The profile and its ancestors, parent first. */
export function resolveProfileChain(profilesDir: string, name: string): string[] {
  const chain: string[] = [];
  let current: string | undefined = name;
  while (current) {
    if (chain.includes(current)) {
      throw new ProfileError(`profile ${name}: 'extends' forms a cycle (${[...chain, current].join(" -> ")})`);
    }
    validateProfileFolder(profilesDir, current);
    chain.push(current);
    const extendsFile = path.join(profilesDir, current, "extends");
    current = fs.existsSync(extendsFile) ? readLines(extendsFile)[0] : undefined;
  }
  return chain.reverse();
}

function listFilesRecursive(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFilesRecursive(path.join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out;
}

export interface ProfileInfo {
  name: string;
  chain: string[];
  packages: string[];
  releases?: string[];
  /** sha256 over every file of the profile and its ancestors, with their paths. */
  contentHash: string;
  /** path -> sha256, for explaining what changed. */
  fileHashes: Record<string, string>;
}

export function readProfile(profilesDir: string, name: string): ProfileInfo {
  const chain = resolveProfileChain(profilesDir, name);
  const fileHashes: Record<string, string> = {};
  const packages: string[] = [];
  let releases: string[] | undefined;
  for (const member of chain) {
    const dir = path.join(profilesDir, member);
    for (const rel of listFilesRecursive(dir)) {
      // Documentation does not change the image: editing it rebuilds nothing.
      if (rel === "README.md") continue;
      const full = path.join(dir, rel);
      fileHashes[`${member}/${rel}`] = crypto.createHash("sha256").update(fs.readFileSync(full)).digest("hex");
      if (rel.startsWith("install.d/")) packages.push(...readLines(full));
      if (rel === "releases") releases = readLines(full);
    }
  }
  const contentHash = crypto
    .createHash("sha256")
    .update(
      Object.entries(fileHashes)
        .map(([rel, hash]) => `${hash}  ${rel}\n`)
        .join(""),
    )
    .digest("hex");
  return { name, chain, packages, releases, contentHash, fileHashes };
}
