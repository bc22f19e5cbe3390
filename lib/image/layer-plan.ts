// The customization's layer plan, computed here and nowhere else: the steps
// scripts/steps/customize-image.sh builds as cached qcow2 layers, in order, each
// named and keyed. The script runs the steps it is given (--step "KEY NAME").
// Steps: the chain's packages (with the layers' repositories), then files/ of each
// layer, then ansible/ of each, then each commands.d script of each, parent first.
// key = sha256(previous key, the step's content); the first key starts from the base
// image, the release and the scripts that build layers. A change in one step
// rebuilds from that step on; a layer whose key is in the store is reused.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { acquiredChecksum } from "../config/image-release";
import { SCRIPTS_DIR } from "../paths";

export interface LayerStep {
  /** sha256 (hex) of everything up to and including this step. */
  key: string;
  /** "packages", "PROFILE/files", "PROFILE/ansible" or "PROFILE/commands.d/NN-name.sh". */
  name: string;
}

export interface LayerPlanInput {
  /** What names the base image's content (the acquired image's sha512, or baseFileKey). */
  baseKey: string;
  /** The Debian codename: only its apt-sources.d/RELEASE/ repositories apply. */
  release: string;
  /** The chain's folders, parent first. */
  layers: string[];
  /** Package names (as install.d writes them). */
  packages: string[];
  /** URI -> where the build fetches it from (--apt-mirror). */
  aptMirrors?: Record<string, string>;
}

// The scripts whose behaviour a layer holds; messages, the Secure Boot check and
// Ansible's log reader only judge or report (editing them rebuilds the image, not its layers).
const LAYER_SCRIPTS = ["customize-image.sh", "customize", "lib/image-mount.sh", "lib/private-dev.sh"];

const sha256 = (data: string | Buffer) => crypto.createHash("sha256").update(data).digest("hex");

function filesUnder(dir: string): string[] {
  if (!fs.statSync(dir).isDirectory()) return [dir];
  return fs
    .readdirSync(dir)
    .sort()
    .flatMap((entry) => filesUnder(path.join(dir, entry)));
}

function layerScriptsHash(): string {
  const files = LAYER_SCRIPTS.flatMap((part) => filesUnder(path.join(SCRIPTS_DIR, part)));
  return sha256(files.map((file) => `${sha256(fs.readFileSync(file))}  ${path.relative(SCRIPTS_DIR, file)}\n`).join(""));
}

/**
 * What names a base image file: the sha512 prepare-cloud-img.sh recorded beside its link (as the
 * stacks name it: their layers are shared), else the file by identity (the cache writes a file once
 * and renames it into place).
 */
export function baseFileKey(base: string): string {
  // customize-image.sh refuses a missing base before it reads a key.
  if (!fs.existsSync(base)) return `missing ${base}`;
  const sha512 = acquiredChecksum(base);
  if (sha512) return `image ${sha512}`;
  const real = fs.realpathSync(base);
  const stat = fs.statSync(real);
  return `file ${real} ${stat.dev}:${stat.ino} ${stat.size} ${stat.mtimeMs}`;
}

/**
 * A folder as copied into the image: paths in name order, types, modes without group and
 * other write (copy_into_image drops them), contents and link targets; owners and times do not count.
 */
export function treeHash(dir: string): string {
  const lines: string[] = [];
  const walk = (rel: string) => {
    const full = path.join(dir, rel);
    const stat = fs.lstatSync(full);
    const mode = (stat.mode & 0o7777 & ~0o022).toString(8);
    if (stat.isSymbolicLink()) lines.push(`l ${rel} ${fs.readlinkSync(full)}`);
    else if (stat.isDirectory()) {
      lines.push(`d ${rel} ${mode}`);
      for (const entry of fs.readdirSync(full).sort()) walk(rel ? `${rel}/${entry}` : entry);
    } else lines.push(`f ${rel} ${mode} ${sha256(fs.readFileSync(full))}`);
  };
  walk("");
  return sha256(lines.join("\n"));
}

const exists = (file: string) => fs.existsSync(file);
const nonEmptyDir = (dir: string) => exists(dir) && fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length > 0;

/** The .sources files of LAYER that apply to RELEASE, as customize/sources.sh reads them. */
function layerSources(layer: string, release: string): string[] {
  const inDir = (dir: string) =>
    exists(dir)
      ? fs
          .readdirSync(dir)
          .filter((file) => file.endsWith(".sources"))
          .sort()
          .map((file) => path.join(dir, file))
          .filter((file) => fs.statSync(file).isFile())
      : [];
  return [...inDir(path.join(layer, "apt-sources.d")), ...inDir(path.join(layer, "apt-sources.d", release))];
}

/** Signed-By keyring paths of a deb822 file's enabled stanzas (a path, not an inline key). */
function signedByPaths(file: string): string[] {
  return fs
    .readFileSync(file, "utf8")
    .split(/\n[ \t]*\n/)
    .filter((stanza) => !/^enabled:[ \t]*no[ \t]*$/im.test(stanza))
    .flatMap((stanza) => [...stanza.matchAll(/^signed-by:[ \t]*(\/\S+)/gim)].map((match) => match[1]));
}

/** What the packages step adds: names, the release's repositories, their keyrings from files/, the mirrors. */
function packagesContent(input: LayerPlanInput): string {
  const lines = input.packages.map((name) => `package ${name}`);
  const keyrings: string[] = [];
  for (const layer of input.layers) {
    for (const source of layerSources(layer, input.release)) {
      lines.push(`source ${path.basename(layer)} ${path.relative(layer, source)} ${sha256(fs.readFileSync(source))}`);
      for (const key of signedByPaths(source)) if (!keyrings.includes(key)) keyrings.push(key);
    }
  }
  for (const key of keyrings) {
    // The last layer whose files/ hold it (customize/sources.sh: keyring_layer); none: the image's own.
    const from = [...input.layers].reverse().find((layer) => exists(path.join(layer, "files", key)));
    if (from) lines.push(`keyring ${key} ${path.basename(from)} ${sha256(fs.readFileSync(path.join(from, "files", key)))}`);
  }
  for (const [uri, mirror] of Object.entries(input.aptMirrors ?? {})) lines.push(`apt-mirror ${uri} ${mirror}`);
  return lines.join("\n");
}

/** The steps and their content, in build order (no keys). */
function stepContents(input: LayerPlanInput): { name: string; content: string }[] {
  const steps: { name: string; content: string }[] = [];
  const packages = packagesContent(input);
  if (packages) steps.push({ name: "packages", content: packages });
  const profile = (layer: string) => path.basename(layer);
  for (const layer of input.layers) {
    if (nonEmptyDir(path.join(layer, "files"))) steps.push({ name: `${profile(layer)}/files`, content: `files ${profile(layer)} ${treeHash(path.join(layer, "files"))}` });
  }
  for (const layer of input.layers) {
    if (exists(path.join(layer, "ansible", "playbook.yml"))) steps.push({ name: `${profile(layer)}/ansible`, content: `ansible ${profile(layer)} ${treeHash(path.join(layer, "ansible"))}` });
  }
  for (const layer of input.layers) {
    const dir = path.join(layer, "commands.d");
    if (!exists(dir)) continue;
    for (const script of fs
      .readdirSync(dir)
      .filter((file) => file.endsWith(".sh"))
      .sort()) {
      steps.push({ name: `${profile(layer)}/commands.d/${script}`, content: `command ${profile(layer)} ${script} ${sha256(fs.readFileSync(path.join(dir, script)))}` });
    }
  }
  return steps;
}

/** The steps' names in build order (what the plan summary shows). */
export function layerStepNames(input: Omit<LayerPlanInput, "baseKey">): string[] {
  return stepContents({ ...input, baseKey: "" }).map((step) => step.name);
}

/** The steps in build order with their keys. */
export function layerPlan(input: LayerPlanInput): LayerStep[] {
  let key = sha256(`btw-img layers 2\nbase ${input.baseKey}\nrelease ${input.release}\nscripts ${layerScriptsHash()}\n`);
  return stepContents(input).map(({ name, content }) => {
    key = sha256(`${key}\n${content}\n`);
    return { key, name };
  });
}
