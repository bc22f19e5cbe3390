// What every section of npm run bench shares: the table of rows (ours, the baseline,
// their ratio), timing, and a few helpers to run and measure steps.
import { execFileSync } from "child_process";
import { CliRun } from "../testkit/cdktf-cli";
import { Firmware } from "../testkit/pxe-lab";

export interface Row {
  measure: string;
  ours: string;
  baseline: string;
  ratio: string;
}

export const rows: Row[] = [];

// Set by the lab section, per firmware: the baseline for a bare-metal machine's first boot.
export const oneVmDeployMs = new Map<Firmware, number>();

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export function timed(label: string, run: () => void): number {
  process.stderr.write(`bench: ${label} ...\n`);
  const start = Date.now();
  run();
  const elapsed = Date.now() - start;
  process.stderr.write(`bench: ${label}: ${seconds(elapsed)}\n`);
  return elapsed;
}

export async function timedAsync(label: string, run: () => Promise<unknown>): Promise<number> {
  process.stderr.write(`bench: ${label} ...\n`);
  const start = Date.now();
  await run();
  const elapsed = Date.now() - start;
  process.stderr.write(`bench: ${label}: ${seconds(elapsed)}\n`);
  return elapsed;
}

export function sh(command: string, env: NodeJS.ProcessEnv = {}): void {
  execFileSync("sh", ["-c", command], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...env } });
}

/** A cdktf run's result when it succeeded; a failed one throws naming the step, so no failure is timed as a success. */
export async function succeeded(step: string, run: Promise<CliRun>): Promise<CliRun> {
  const result = await run;
  if (result.status !== 0) throw new Error(`${step} failed (exit ${result.status}):\n${result.output.slice(-3000)}`);
  return result;
}

export function addRow(measure: string, ours: number, baseline: number, format = seconds): void {
  rows.push({ measure, ours: format(ours), baseline: format(baseline), ratio: baseline > 0 ? (ours / baseline).toFixed(2) : "n/a" });
}

/** Bytes a folder takes on disk (holes not counted). */
export function diskBytes(dir: string): number {
  return Number(execFileSync("du", ["-s", "-B1", dir], { encoding: "utf8" }).split("\t")[0]);
}

export function printTable(): void {
  const header: Row = { measure: "measure", ours: "btw-img", baseline: "baseline", ratio: "ratio" };
  const all = [header, ...rows];
  const width = (key: keyof Row) => Math.max(...all.map((r) => r[key].length));
  const line = (r: Row) => `| ${r.measure.padEnd(width("measure"))} | ${r.ours.padStart(width("ours"))} | ${r.baseline.padStart(width("baseline"))} | ${r.ratio.padStart(width("ratio"))} |`;
  console.log(line(header));
  console.log(`|${"-".repeat(width("measure") + 2)}|${"-".repeat(width("ours") + 2)}|${"-".repeat(width("baseline") + 2)}|${"-".repeat(width("ratio") + 2)}|`);
  for (const row of rows) console.log(line(row));
  console.log("\nratio = btw-img / baseline, measured in this run on the same input (lower is better).");
}
