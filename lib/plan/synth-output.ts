// Where a lab is synthesized: each lab (BTW_CONFIG) gets its own folder
// <outdir>/labs/<lab name>/ with its own stacks/<stack> working folders.
// Why: a stack folder keeps the engine's .terraform, which records the lab's
// LocalBackend path; when two labs shared cdktf.out/stacks/lab, synthesizing
// another lab made the next init fail with "Backend configuration changed",
// and a synth of one lab rewrote the folder a deploy of another was using.
import * as fs from "fs";
import * as path from "path";

/** cdktf's output folder when no --output is given. */
export const DEFAULT_OUTDIR = "cdktf.out";
const LABS_FOLDER = "labs";
const MANIFEST = "manifest.json";

/** The fields of a cdktf manifest.json stack entry that name files, relative to the manifest's folder. */
const STACK_PATH_FIELDS = ["workingDirectory", "synthesizedStackPath", "stackMetadataPath"] as const;

type StackEntry = Record<(typeof STACK_PATH_FIELDS)[number], string> & Record<string, unknown>;

export interface SynthManifest {
  version: string;
  stacks: Record<string, StackEntry>;
}

/** The lab's own folder under outdir; outdir itself when it already is that folder (`--output cdktf.out/labs/<name>`). */
export function labOutdir(outdir: string, labName: string): string {
  const absolute = path.resolve(outdir);
  const isLabFolder = path.basename(absolute) === labName && path.basename(path.dirname(absolute)) === LABS_FOLDER;
  return isLabFolder ? absolute : path.join(absolute, LABS_FOLDER, labName);
}

function readManifest(dir: string): SynthManifest {
  return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), "utf8")) as SynthManifest;
}

/** Each stack of the manifest in dir, with its working folder (where the engine runs). */
export function stackWorkingDirs(dir: string): Map<string, string> {
  const stacks = Object.entries(readManifest(dir).stacks);
  return new Map(stacks.map(([name, stack]) => [name, path.join(dir, stack.workingDirectory)]));
}

/** The lab's manifest with its paths made relative to outdir instead of labDir. */
export function relocateManifest(manifest: SynthManifest, outdir: string, labDir: string): SynthManifest {
  const prefix = path.relative(path.resolve(outdir), path.resolve(labDir));
  const stacks = Object.fromEntries(
    Object.entries(manifest.stacks).map(([name, stack]) => {
      const paths = Object.fromEntries(STACK_PATH_FIELDS.map((field) => [field, path.join(prefix, stack[field])]));
      return [name, { ...stack, ...paths }];
    }),
  );
  return { ...manifest, stacks };
}

/**
 * Makes `<outdir>/manifest.json` point at the lab synthesized into labDir, so a cdktf
 * command given outdir (`cdktf deploy lab`) works on that lab. Written to a temporary
 * file and renamed: a concurrent synth of another lab never leaves a torn manifest.
 */
export function publishLabManifest(outdir: string, labDir: string): void {
  if (path.resolve(outdir) === path.resolve(labDir)) return;
  const manifest = relocateManifest(readManifest(labDir), outdir, labDir);
  const target = path.join(outdir, MANIFEST);
  const temporary = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(manifest, null, 2));
  fs.renameSync(temporary, target);
}

/**
 * The engine records a stack's backend in <working folder>/.terraform/terraform.tfstate.
 * When the lab's state file moved (another BTW_STATE_DIR for the same lab name), that
 * record names the old one and the next init stops with "Backend configuration changed".
 * A new state folder means another deployment, not a move: the record is dropped, as
 * `init -reconfigure` does, so init uses the new file and copies nothing; the old state
 * file stays where it is. Returns the state file the record named, when it dropped one.
 */
export function forgetMovedBackend(workingDir: string, statePath: string): string | undefined {
  const record = path.join(workingDir, ".terraform", "terraform.tfstate");
  let recorded: string | undefined;
  try {
    recorded = JSON.parse(fs.readFileSync(record, "utf8"))?.backend?.config?.path;
  } catch {
    return undefined; // no record yet (never initialized) or not ours to judge
  }
  if (typeof recorded !== "string" || path.resolve(workingDir, recorded) === path.resolve(statePath)) return undefined;
  fs.rmSync(record, { force: true });
  return recorded;
}
