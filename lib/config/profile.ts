// Profiles are folders of plain files (see profiles/README.md). This module is
// the one place that resolves them: it checks each folder's layout, follows
// `extends` (parent first), refuses cycles and releases a chain does not
// support, reads the package lists and fingerprints the files.
// scripts/steps/customize-image.sh applies the result: the chain's folders as layers
// and the package list, as arguments.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

const ALLOWED_TOP = new Set(["install.d", "commands.d", "files", "ansible", "apt-sources.d", "extends", "releases", "no-secure-boot", "README.md"]);
const PLAIN_FILES = new Set(["extends", "releases", "no-secure-boot", "README.md"]);
const ALLOWED_IN: Record<string, RegExp> = {
  "install.d": /^[A-Za-z0-9_.-]+\.list$/,
  "commands.d": /^[0-9]{2}-[A-Za-z0-9_.-]+\.sh$/,
  "apt-sources.d": /^[A-Za-z0-9_.-]+\.sources$/,
};
const EXPECTED = "expected install.d/*.list, commands.d/NN-*.sh, files/, ansible/, apt-sources.d/*.sources, apt-sources.d/RELEASE/*.sources, extends, releases, no-secure-boot, README.md";
// apt-sources.d/<codename>/ holds the repositories of one Debian release only.
const RELEASE_FOLDER = /^[a-z]+$/;
// customize-image.sh runs this playbook; roles, vars and templates go beside it.
const PLAYBOOK = "ansible/playbook.yml";
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// A Debian package name, optionally with =version, /suite or :arch.
const PACKAGE_NAME = /^[a-z0-9][a-zA-Z0-9+.:=~/-]*$/;

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

/** "unknown profile 'x' (profiles in DIR: a, b)": the one wording, wherever a profile name is looked up. */
function unknownProfile(profilesDir: string, name: string): string {
  return `unknown profile '${name}' (profiles in ${profilesDir}: ${listProfiles(profilesDir).join(", ") || "none"})`;
}

function isProfile(profilesDir: string, name: string): boolean {
  return PROFILE_NAME.test(name) && listProfiles(profilesDir).includes(name);
}

/** Lines without `#` comments and surrounding blanks, with their line numbers; blank lines left out. */
function readLines(file: string): { line: number; text: string }[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((line, index) => ({ line: index + 1, text: line.replace(/#.*/, "").trim() }))
    .filter((line) => line.text.length > 0);
}

/** Checks that a profile folder holds only files we understand (plain files and folders, no links). */
export function validateProfileFolder(profilesDir: string, name: string): void {
  if (!isProfile(profilesDir, name)) throw new ProfileError(unknownProfile(profilesDir, name));
  const dir = path.join(profilesDir, name);
  const unexpected = (rel: string, expected = EXPECTED) => new ProfileError(`profile ${name}: unexpected file ${rel} (${expected})`);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!ALLOWED_TOP.has(entry.name)) throw unexpected(entry.name);
    if (PLAIN_FILES.has(entry.name) ? !entry.isFile() : !entry.isDirectory()) throw unexpected(entry.name);
    if (entry.name === "ansible" && !fs.statSync(path.join(dir, PLAYBOOK), { throwIfNoEntry: false })?.isFile()) {
      throw new ProfileError(`profile ${name}: ansible/ has no playbook.yml (the build runs ${PLAYBOOK}; its roles and vars go beside it)`);
    }
    const pattern = ALLOWED_IN[entry.name];
    if (!pattern) continue;
    for (const inner of fs.readdirSync(path.join(dir, entry.name), { withFileTypes: true })) {
      if (entry.name === "apt-sources.d" && inner.isDirectory() && RELEASE_FOLDER.test(inner.name)) {
        for (const source of fs.readdirSync(path.join(dir, entry.name, inner.name), { withFileTypes: true })) {
          if (!source.isFile() || !pattern.test(source.name)) throw unexpected(`apt-sources.d/${inner.name}/${source.name}`, `expected ${pattern.source}`);
        }
        continue;
      }
      if (!inner.isFile() || !pattern.test(inner.name)) {
        throw unexpected(`${entry.name}/${inner.name}`, `expected ${entry.name === "commands.d" ? "NN-name.sh" : pattern.source}`);
      }
    }
  }
}

/** The parents a profile names in its `extends` file (one a line or several on a line), in order. */
function parentsOf(profilesDir: string, name: string): string[] {
  const file = path.join(profilesDir, name, "extends");
  if (!fs.existsSync(file)) return [];
  const words = readLines(file).flatMap((line) => line.text.split(/\s+/));
  if (words.length === 0) throw new ProfileError(`profile ${name}: extends names no profile (remove the file, or name one or more parents)`);
  for (const [index, word] of words.entries()) {
    if (!isProfile(profilesDir, word)) throw new ProfileError(`profile ${name}: extends ${unknownProfile(profilesDir, word)}`);
    if (words.indexOf(word) !== index) throw new ProfileError(`profile ${name}: extends names ${word} twice`);
  }
  return words;
}

/**
 * The profile and its ancestors in the order they are applied: each parent's own chain
 * first, in the order `extends` names them, each profile before those extending it; a
 * profile reached twice (minimal, through two parents) is applied once, at its first place.
 * Each folder is checked on the way.
 */
function resolveProfileChain(profilesDir: string, name: string): string[] {
  const chain: string[] = [];
  const visit = (current: string, trail: string[]) => {
    if (trail.includes(current)) {
      throw new ProfileError(`profile ${name}: 'extends' forms a cycle (${[...trail.slice(trail.indexOf(current)), current].join(" -> ")})`);
    }
    if (chain.includes(current)) return;
    validateProfileFolder(profilesDir, current);
    for (const parent of parentsOf(profilesDir, current)) visit(parent, [...trail, current]);
    chain.push(current);
  };
  visit(name, []);
  return chain;
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

export interface ProfilePackage {
  /** As written in the list: a name, possibly with =version or /suite. */
  name: string;
  /** Where it comes from, for error messages: "profile minimal: install.d/base.list:3". */
  origin: string;
}

export interface ProfileInfo {
  name: string;
  chain: string[];
  /** The chain's folders, parent first: the layers customize-image.sh applies in this order. */
  layers: string[];
  packages: string[];
  packageLines: ProfilePackage[];
  /** The releases every `releases` file of the chain allows; undefined when none restricts them. */
  releases?: string[];
  /** Why the image cannot boot with Secure Boot enforced ("profile proxmox: ..."), from a `no-secure-boot` file of the chain. */
  noSecureBoot?: string;
  /** sha256 over the chain's order and every file of the profile and its ancestors, with their paths. */
  contentHash: string;
  /** path -> sha256, for explaining what changed. */
  fileHashes: Record<string, string>;
}

/**
 * Resolves a profile: its chain, packages and fingerprint. With `release` (the lab's
 * Debian codename), a chain member whose `releases` does not list it is refused.
 */
export function readProfile(profilesDir: string, name: string, release?: string): ProfileInfo {
  const chain = resolveProfileChain(profilesDir, name);
  const fileHashes: Record<string, string> = {};
  const packageLines: ProfilePackage[] = [];
  let releases: string[] | undefined;
  let noSecureBoot: string | undefined;
  for (const member of chain) {
    const dir = path.join(profilesDir, member);
    for (const rel of listFilesRecursive(dir)) {
      // Documentation does not change the image: editing it rebuilds nothing.
      if (rel === "README.md") continue;
      // Another release's repositories are not applied: editing them rebuilds nothing for this one.
      const sourcesRelease = /^apt-sources\.d\/([^/]+)\//.exec(rel)?.[1];
      if (release !== undefined && sourcesRelease !== undefined && sourcesRelease !== release) continue;
      const full = path.join(dir, rel);
      fileHashes[`${member}/${rel}`] = crypto.createHash("sha256").update(fs.readFileSync(full)).digest("hex");
      if (rel.startsWith("install.d/")) {
        for (const { line, text } of readLines(full)) {
          const where = `profile ${member}: ${rel}:${line}`;
          if (/\s/.test(text)) throw new ProfileError(`${where}: one package per line: '${text}'`);
          if (!PACKAGE_NAME.test(text)) throw new ProfileError(`${where}: not a package name: '${text}'`);
          packageLines.push({ name: text, origin: where });
        }
      }
      if (rel === "releases") {
        const supported = readLines(full).flatMap((line) => line.text.split(/\s+/));
        if (release !== undefined && !supported.includes(release)) {
          throw new ProfileError(`profile ${member} supports releases: ${supported.join(" ")} but the lab's release is ${release}` + (member === name ? "" : ` (profile ${name} extends it)`));
        }
        releases = releases ? releases.filter((r) => supported.includes(r)) : supported;
      }
      if (rel === "no-secure-boot" && noSecureBoot === undefined) {
        const reason = readLines(full)
          .map((line) => line.text)
          .join(" ");
        noSecureBoot = `profile ${member}${member === name ? "" : ` (which ${name} extends)`} cannot boot with Secure Boot enforced${reason ? `: ${reason}` : ""}`;
      }
    }
  }
  const contentHash = crypto
    .createHash("sha256")
    .update(`chain: ${chain.join(" ")}\n`)
    .update(
      Object.entries(fileHashes)
        .map(([rel, hash]) => `${hash}  ${rel}\n`)
        .join(""),
    )
    .digest("hex");
  return {
    name,
    chain,
    layers: chain.map((member) => path.join(profilesDir, member)),
    packages: packageLines.map((p) => p.name),
    packageLines,
    releases,
    noSecureBoot,
    contentHash,
    fileHashes,
  };
}
