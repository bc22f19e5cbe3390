// A host step is one script from scripts/ run by a terraform_data resource's
// local-exec provisioner; its triggers decide when it runs again.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Construct } from "constructs";
import { ITerraformDependable, TerraformData } from "../cdk";
import { SCRIPTS_DIR } from "../paths";
import { terraformLiterals } from "../terraform-string";

export { SCRIPTS_DIR } from "../paths";

export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

// How a script names another script it sources or runs, "$(dirname "$0")/lib/image-mount.sh",
// or a folder whose files it copies, "$(dirname "$0")/../../deploy-env/".
const SCRIPT_REFERENCE = /"\$\(dirname "\$0"\)\/([A-Za-z0-9_./-]+(?:\.sh|\.py|\/))"/g;

/** Every file under a folder of SCRIPTS_DIR (relative to it), sorted. */
function folderFiles(folder: string): string[] {
  return fs
    .readdirSync(path.join(SCRIPTS_DIR, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) =>
      path.posix.join(
        path
          .relative(SCRIPTS_DIR, entry.parentPath ?? entry.path)
          .split(path.sep)
          .join("/"),
        entry.name,
      ),
    )
    .sort();
}

/**
 * The script and every script it names as "$(dirname "$0")/...", and those name in turn,
 * each file of a folder it names that way too: all relative to the step script's folder,
 * as $0 stays the step script in what it sources.
 */
export function scriptParts(script: string): string[] {
  const parts = [script];
  for (let i = 0; i < parts.length; i++) {
    const text = fs.readFileSync(path.join(SCRIPTS_DIR, parts[i]), "utf8");
    for (const [, relative] of text.matchAll(SCRIPT_REFERENCE)) {
      const part = path.posix.normalize(path.posix.join(path.posix.dirname(script), relative));
      for (const file of part.endsWith("/") ? folderFiles(part) : [part]) {
        if (!parts.includes(file)) parts.push(file);
      }
    }
  }
  return parts;
}

/** sha256 of a script and the scripts it sources or runs, so a new version of any of them re-runs its step. */
export function scriptHash(script: string): string {
  const sha256 = (part: string) =>
    crypto
      .createHash("sha256")
      .update(fs.readFileSync(path.join(SCRIPTS_DIR, part)))
      .digest("hex");
  const parts = scriptParts(script);
  // A script on its own keeps the hash of its content alone.
  if (parts.length === 1) return sha256(script);
  return crypto
    .createHash("sha256")
    .update(parts.map((part) => `${sha256(part)}  ${part}\n`).join(""))
    .digest("hex");
}

export function scriptCommand(script: string, args: string[]): string {
  return ["sh", shellQuote(path.join(SCRIPTS_DIR, script)), ...args.map(shellQuote)].join(" ");
}

export interface HostStepProps {
  script: string;
  args: string[];
  /** What makes the step run again (shown in `cdktf diff`). */
  triggers: Record<string, unknown>;
  environment?: Record<string, string>;
  /** A command run when the step is destroyed, e.g. to remove its files. */
  destroyCommand?: string;
  dependsOn?: ITerraformDependable[];
  /** Stored in state and echoed as the resource's output after a successful run. */
  input?: Record<string, unknown>;
  /** Skip the script when this file already exists. */
  skipIfExists?: string;
  /** A command run first, whenever the script runs; the script runs only if it succeeds. */
  before?: string;
}

function guarded(props: HostStepProps): string {
  const run = props.before ? `{ ${props.before} && ${scriptCommand(props.script, props.args)}; }` : scriptCommand(props.script, props.args);
  return (props.skipIfExists ? `test -e ${shellQuote(props.skipIfExists)} || ` : "") + run;
}

export function hostStep(scope: Construct, id: string, props: HostStepProps): TerraformData {
  const provisioners: { type: "local-exec"; command: string; environment?: Record<string, string>; when?: "destroy" }[] = [
    {
      type: "local-exec",
      command: guarded(props),
      environment: props.environment,
    },
  ];
  if (props.destroyCommand) {
    provisioners.push({ type: "local-exec", command: props.destroyCommand, when: "destroy" });
  }
  // Arguments, environment and triggers carry config text (user-data, paths, URLs) to the engine.
  return new TerraformData(
    scope,
    id,
    terraformLiterals({
      triggersReplace: { ...props.triggers, script_sha256: scriptHash(props.script) },
      input: props.input,
      dependsOn: props.dependsOn,
      provisioners,
    }),
  );
}
