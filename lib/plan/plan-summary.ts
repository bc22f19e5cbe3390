// Turns the engine's plan (`terraform show -json`) into the Markdown a reviewer
// reads in a pull request: counts, the resources that change and how, and why
// image steps (slow host scripts run by terraform_data) will run again.
// The summary goes into PR/MR comments: cloud-init data (user-data may hold
// passwords and tokens) is described, never shown; `cdktf diff` shows it locally.
import { isDeepStrictEqual } from "util";

/** The parts of `show -json` output read here. */
export interface PlanJson {
  errored?: boolean;
  resource_changes?: ResourceChange[];
}

export interface ResourceChange {
  address: string;
  type: string;
  name: string;
  action_reason?: string;
  change: {
    actions: string[];
    before: unknown;
    after: unknown;
    after_unknown?: unknown;
    before_sensitive?: unknown;
    after_sensitive?: unknown;
  };
}

export interface StackPlan {
  stack: string;
  plan: PlanJson;
}

type Action = "add" | "change" | "replace" | "destroy";
// Table order: what loses data first.
const ACTION_ORDER: Action[] = ["destroy", "replace", "change", "add"];

function actionOf(actions: string[]): Action | undefined {
  if (actions.includes("delete") && actions.includes("create")) return "replace";
  if (actions.includes("create")) return "add";
  if (actions.includes("update")) return "change";
  if (actions.includes("delete")) return "destroy";
  return undefined;
}

// ---------------------------------------------------------------- attributes

const UNKNOWN = Symbol("known after apply");
type Leaf = string | number | boolean | null | typeof UNKNOWN;

interface AttributeChange {
  path: string;
  /** undefined: the attribute is absent on that side. */
  before?: Leaf;
  after?: Leaf;
  sensitive: boolean;
}

function childPath(prefix: string, key: string | number): string {
  if (typeof key === "number") return `${prefix}[${key}]`;
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `${prefix}[${JSON.stringify(key)}]`;
  return prefix ? `${prefix}.${key}` : key;
}

/** Every scalar in a nested value, by its path (`a.b[0]["c/d"]`); empty lists and maps vanish. */
function flatten(value: unknown, prefix = "", out = new Map<string, Leaf>()): Map<string, Leaf> {
  if (value !== null && typeof value === "object") {
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    for (const [key, inner] of entries) flatten(inner, childPath(prefix, key), out);
  } else if (value !== undefined && prefix) {
    out.set(prefix, value as Leaf);
  }
  return out;
}

/** Paths marked `true` in after_unknown / *_sensitive (a marked path covers all below it). */
function markedPaths(marks: unknown): string[] {
  return [...flatten(marks).entries()].filter(([, mark]) => mark === true).map(([path]) => path);
}

function isUnder(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}.`) || path.startsWith(`${root}[`);
}

function changedAttributes(change: ResourceChange["change"]): AttributeChange[] {
  const before = flatten(change.before);
  const after = flatten(change.after);
  const unknownRoots = markedPaths(change.after_unknown);
  const sensitiveRoots = [...markedPaths(change.before_sensitive), ...markedPaths(change.after_sensitive)];
  const isSensitive = (path: string) => sensitiveRoots.some((root) => isUnder(path, root));
  const changes: AttributeChange[] = [];
  for (const root of unknownRoots) {
    // A replaced resource always gets a new id, and attributes never known before say nothing.
    if (root === "id" || ![...before.keys()].some((path) => isUnder(path, root))) continue;
    changes.push({ path: root, after: UNKNOWN, sensitive: isSensitive(root) });
  }
  for (const path of new Set([...before.keys(), ...after.keys()])) {
    if (unknownRoots.some((root) => isUnder(path, root))) continue;
    const old = before.get(path) ?? undefined;
    const now = after.get(path) ?? undefined;
    if (old === now) continue;
    changes.push({ path, before: old, after: now, sensitive: isSensitive(path) });
  }
  return changes.sort((a, b) => a.path.localeCompare(b.path));
}

function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** A value short enough to print inline, or undefined. Hashes are shortened: their change is the news. */
function shortValue(value: Leaf | undefined): string | undefined {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value !== "string") return undefined;
  if (/^[0-9a-f]{64}$/.test(value)) return `${value.slice(0, 12)}…`;
  return value.length <= 80 && !value.includes("\n") ? value : undefined;
}

// Attributes holding a seed's cloud-init data (terraform_data triggers, environment, ...).
const CLOUD_INIT_DATA_KEYS = new Set(["user_data", "meta_data", "network_config"]);

function isCloudInitData(path: string): boolean {
  return path.split(/[.[\]]/).some((segment) => CLOUD_INIT_DATA_KEYS.has(segment));
}

function describeAttributeChange(change: AttributeChange): string {
  const name = code(change.path);
  if (change.after === UNKNOWN) return `${name} → (known after apply)`;
  if (change.sensitive) return `${name} changed (sensitive)`;
  if (isCloudInitData(change.path)) return `${name} changed (cloud-init data, not shown)`;
  const old = shortValue(change.before);
  const now = shortValue(change.after);
  if (change.before === undefined) return now === undefined ? `${name} added` : `${name} added: ${code(now)}`;
  if (change.after === undefined) return `${name} removed`;
  return old !== undefined && now !== undefined ? `${name}: ${code(old)} → ${code(now)}` : `${name} changed`;
}

// ---------------------------------------------------------------- image steps

type StepKind = "acquire" | "customize" | "seed" | "ready" | "playbooks";

interface ImageStepType {
  kind: StepKind;
  pattern: RegExp;
  script: string;
  title: (subject: string) => string;
  firstRun: string;
}

// terraform_data names are `<construct path>_<step>_<hash>`, see lib/constructs/cloud-image.ts,
// lib/constructs/customized-image.ts and lib/constructs/lab-machine.ts (lib/constructs/image-pipeline.ts's construct
// is named "Default", which the names leave out).
const IMAGE_STEP_TYPES: ImageStepType[] = [
  {
    kind: "acquire",
    pattern: /^cloud-image_acquire(?:_[0-9A-F]{8})?$/,
    script: "prepare-cloud-img.sh",
    title: () => "acquire the cloud image",
    firstRun: "will run: first build",
  },
  {
    kind: "customize",
    pattern: /^image-(.+)_customize(?:_[0-9A-F]{8})?$/,
    script: "customize-image.sh",
    title: (profile) => `customize image ${profile}`,
    firstRun: "will run: first build",
  },
  {
    kind: "seed",
    pattern: /^vm-(.+)_seed(?:_[0-9A-F]{8})?$/,
    script: "make-seed-iso.sh",
    title: (vm) => `cloud-init seed of vm ${vm}`,
    firstRun: "will run: first build",
  },
  {
    kind: "ready",
    pattern: /^vm-(.+)_cloud-init-ready(?:_[0-9A-F]{8})?$/,
    script: "wait-for-cloud-init.sh",
    title: (vm) => `wait for cloud-init on vm ${vm}`,
    firstRun: "will run: first boot",
  },
  {
    kind: "playbooks",
    pattern: /^vm-(.+)_playbooks(?:_[0-9A-F]{8})?$/,
    script: "run-playbooks.sh",
    title: (vm) => `run the playbooks of vm ${vm}`,
    firstRun: "will run: first boot",
  },
];

export interface ImageStepRun {
  address: string;
  kind: StepKind;
  subject: string;
  title: string;
  action: Action;
  /** Each reason a Markdown line. */
  reasons: string[];
}

type Triggers = Record<string, unknown>;

function triggersOf(value: unknown): Triggers {
  const triggers = (value as { triggers_replace?: unknown } | null)?.triggers_replace;
  return triggers && typeof triggers === "object" ? (triggers as Triggers) : {};
}

/** "profile minimal changed: minimal/install.d/base.list (modified), ..." per profile of the chain. */
function profileFileChanges(before: unknown, after: unknown): string[] {
  const old = (before ?? {}) as Record<string, string>;
  const now = (after ?? {}) as Record<string, string>;
  const byProfile = new Map<string, string[]>();
  for (const file of [...new Set([...Object.keys(old), ...Object.keys(now)])].sort()) {
    const how = !(file in old) ? "added" : !(file in now) ? "removed" : old[file] !== now[file] ? "modified" : undefined;
    if (!how) continue;
    const profile = file.split("/")[0];
    byProfile.set(profile, [...(byProfile.get(profile) ?? []), `${file} (${how})`]);
  }
  return [...byProfile].map(([profile, files]) => `profile ${profile} changed: ${files.join(", ")}`);
}

/** "12 → 13 lines (runcmd)": the lines of a cloud-config before and after, and the top-level keys whose size changed (cloudConfigShape). */
function cloudConfigChange(before: unknown, after: unknown): string {
  const old = (before ?? {}) as Record<string, number>;
  const now = (after ?? {}) as Record<string, number>;
  const total = (shape: Record<string, number>) => Object.values(shape).reduce((sum, lines) => sum + lines, 0);
  const keys = [...new Set([...Object.keys(old), ...Object.keys(now)])].filter((key) => old[key] !== now[key]);
  return `${total(old)} → ${total(now)} lines${keys.length > 0 ? ` (${keys.join(", ")})` : ""}`;
}

function explainTrigger(type: ImageStepType, subject: string, key: string, before: unknown, after: unknown): string[] {
  const now = after === UNKNOWN ? "(known after apply)" : code(String(after));
  if (key === "script_sha256") return [`${code(`scripts/steps/${type.script}`)} changed`];
  switch (`${type.kind}.${key}`) {
    case "acquire.url":
      return [`image URL changed: ${code(String(before))} → ${now}`];
    case "acquire.checksums":
      return [`checksums URL changed: ${code(String(before))} → ${now}`];
    case "customize.profile_files":
      return profileFileChanges(before, after);
    case "customize.base_image":
      return [after === UNKNOWN ? "the cloud image is acquired again" : "the cloud image step was replaced"];
    // State keeps only user-data's hash and its keys' sizes (lib/config/seed.ts cloudConfigShape).
    case "seed.user_data_keys":
      return [`cloud-init user-data of vm ${subject} changed${after === UNKNOWN ? "" : `: ${cloudConfigChange(before, after)}`}`];
    case "seed.user_data_sha256":
      return [`cloud-init user-data of vm ${subject} changed (a value: the same keys, as many lines)`];
    case "seed.user_data":
      return [`the seed of vm ${subject} keeps user-data's hash in state now, no longer its text: it is made again once`];
    case "seed.network_config":
      return [`cloud-init network-config of vm ${subject} changed`];
    case "seed.meta_data":
      return [`cloud-init meta-data of vm ${subject} changed`];
    case "seed.image":
      return [`the image vm ${subject} boots is rebuilt`];
    case "playbooks.domain":
      return [`the domain of vm ${subject} is created again: its playbooks run on the new machine`];
    case "playbooks.playbooks":
      return [`the playbooks of vm ${subject} changed: ${((after ?? []) as string[]).map((playbook) => code(playbook)).join(", ") || "none"}`];
    case "playbooks.playbook_folders":
      return Object.keys({ ...(before as object), ...(after as object) })
        .filter((playbook) => (before as Record<string, string> | undefined)?.[playbook] !== (after as Record<string, string> | undefined)?.[playbook])
        .map((playbook) => `the folder of playbook ${code(playbook)} changed (the playbook, its roles or vars)`);
    case "ready.domain":
      return [`the domain of vm ${subject} is created again (its image or seed changed): cloud-init is waited for on its new first boot`];
    default:
      return [`trigger ${code(key)} changed`];
  }
}

/** The customization layer a profile file belongs to (lib/constructs/customized-image.ts customizationLayers). */
function layerOfFile(file: string): string {
  const [member, folder] = file.split("/");
  if (folder === "install.d" || folder === "apt-sources.d") return "packages";
  if (folder === "files" || folder === "ansible") return `${member}/${folder}`;
  return file;
}

/** "rebuilds from layer `minimal/commands.d/10-x.sh` (cached: packages, minimal/files)": the first layer that runs again. */
function layerRebuild(before: Triggers, after: Triggers): string[] {
  const old = Array.isArray(before.layers) ? (before.layers as string[]) : undefined;
  const now = Array.isArray(after.layers) ? (after.layers as string[]) : undefined;
  if (!old || !now) return [];
  const oldFiles = (before.profile_files ?? {}) as Record<string, string>;
  const newFiles = (after.profile_files ?? {}) as Record<string, string>;
  const changed = new Set([...new Set([...Object.keys(oldFiles), ...Object.keys(newFiles)])].filter((file) => oldFiles[file] !== newFiles[file]).map(layerOfFile));
  const first = now.findIndex((layer, i) => layer !== old[i] || changed.has(layer));
  if (first < 0) return now.length < old.length ? ["layers removed at the end: only the image is written again (every layer cached)"] : [];
  if (first === 0) return [`rebuilds every layer, from ${code(now[0])}`];
  return [`rebuilds from layer ${code(now[first])} (${first + 1} of ${now.length}; cached: ${now.slice(0, first).join(", ")})`];
}

// Triggers computed from others: their change is already explained by the one they follow.
const DERIVED_TRIGGERS: Record<string, string[]> = {
  "customize.layers": ["profile_files"],
  "seed.meta_data": ["user_data_sha256", "user_data_keys", "network_config"],
  "seed.user_data_sha256": ["user_data_keys"],
  "playbooks.playbook_folders": ["playbooks"],
};

function triggerReasons(type: ImageStepType, subject: string, change: ResourceChange): string[] {
  const before = triggersOf(change.change.before);
  const after = triggersOf(change.change.after);
  const unknown = triggersOf(change.change.after_unknown);
  const changedKeys = [...new Set([...Object.keys(before), ...Object.keys(after), ...Object.keys(unknown)])].filter((key) => unknown[key] === true || !isDeepStrictEqual(before[key], after[key]));
  const reasons = changedKeys
    .filter((key) => !(DERIVED_TRIGGERS[`${type.kind}.${key}`] ?? []).some((source) => changedKeys.includes(source)))
    .flatMap((key) => explainTrigger(type, subject, key, before[key], unknown[key] === true ? UNKNOWN : after[key]));
  // Only the profile changed: its layers before the first changed one are reused (customize-image.sh).
  const profileOnly = changedKeys.every((key) => ["profile_files", "layers"].includes(key));
  return type.kind === "customize" && profileOnly && changedKeys.length > 0 ? [...reasons, ...layerRebuild(before, after)] : reasons;
}

const REPLACE_REASONS: Record<string, string> = {
  replace_by_request: "replacement requested (-replace)",
  replace_because_tainted: "the last run failed (tainted)",
  replace_by_triggers: "a resource in its replace_triggered_by is replaced",
};

export function imageStepRun(change: ResourceChange): ImageStepRun | undefined {
  const action = actionOf(change.change.actions);
  if (change.type !== "terraform_data" || !action) return undefined;
  for (const type of IMAGE_STEP_TYPES) {
    const match = type.pattern.exec(change.name);
    if (!match) continue;
    const subject = match[1] ?? "";
    let reasons: string[];
    if (action === "add") reasons = [type.firstRun];
    else if (action === "destroy") reasons = ["removed: no longer in the configuration"];
    else reasons = triggerReasons(type, subject, change);
    if (reasons.length === 0) reasons = [REPLACE_REASONS[change.action_reason ?? ""] ?? `will run again (${change.action_reason ?? action})`];
    return { address: change.address, kind: type.kind, subject, title: type.title(subject), action, reasons };
  }
  return undefined;
}

// ---------------------------------------------------------------- Markdown

const MAX_ATTRIBUTES_PER_ROW = 8;

function tableCell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function actionLabel(change: ResourceChange, action: Action): string {
  if (action !== "replace") return action;
  if (change.action_reason === "replace_by_triggers") return "replace (replace_triggered_by)";
  if (change.action_reason === "replace_by_request") return "replace (requested)";
  return "replace";
}

function changedRow(change: ResourceChange, action: Action): string {
  const attributes = action === "change" || action === "replace" ? changedAttributes(change.change).map(describeAttributeChange) : [];
  const shown = attributes.slice(0, MAX_ATTRIBUTES_PER_ROW);
  if (attributes.length > shown.length) shown.push(`… and ${attributes.length - shown.length} more`);
  return `| ${actionLabel(change, action)} | ${code(change.address)} | ${tableCell(shown.join("<br>") || "—")} |`;
}

/** Steps in the order they run: acquire, customize, seed, ready. */
function stepOrder(run: ImageStepRun): number {
  return IMAGE_STEP_TYPES.findIndex((type) => type.kind === run.kind);
}

function stepLines(run: ImageStepRun): string[] {
  return [`- **${run.title}** (${code(run.address)}, ${run.action}):`, ...run.reasons.map((reason) => `  - ${reason}`)];
}

function stackChanges(plan: PlanJson): { change: ResourceChange; action: Action }[] {
  return (plan.resource_changes ?? [])
    .map((change) => ({ change, action: actionOf(change.change.actions) }))
    .filter((entry): entry is { change: ResourceChange; action: Action } => entry.action !== undefined)
    .sort((a, b) => ACTION_ORDER.indexOf(a.action) - ACTION_ORDER.indexOf(b.action) || a.change.address.localeCompare(b.change.address));
}

function renderStackSummary({ stack, plan }: StackPlan): string[] {
  const changes = stackChanges(plan);
  const count = (action: Action) => changes.filter((entry) => entry.action === action).length;
  const lines = [`## Stack ${code(stack)}`, "", `**${count("add")} to add, ${count("change")} to change, ${count("replace")} to replace, ${count("destroy")} to destroy.**`, ""];
  if (changes.length === 0) return [...lines, "No changes: what is deployed matches the configuration.", ""];
  lines.push("| Action | Resource | What changes |", "|---|---|---|", ...changes.map(({ change, action }) => changedRow(change, action)), "");
  const runs = changes
    .map(({ change }) => imageStepRun(change))
    .filter((run): run is ImageStepRun => run !== undefined)
    .sort((a, b) => stepOrder(a) - stepOrder(b) || a.subject.localeCompare(b.subject));
  lines.push("### Image steps that will re-run and why", "");
  lines.push(...(runs.length > 0 ? runs.flatMap(stepLines) : ["None: the images and seeds are unchanged."]), "");
  return lines;
}

export function renderPlanSummary(stacks: StackPlan[]): string {
  return ["# Plan summary", "", ...stacks.flatMap(renderStackSummary)].join("\n");
}

export function hasChanges(stacks: StackPlan[]): boolean {
  return stacks.some(({ plan }) => stackChanges(plan).length > 0);
}
