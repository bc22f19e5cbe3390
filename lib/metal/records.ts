// What a PXE server's records folder (<state_dir>/<lab>.records, written by its
// CGI, scripts/steps/pxe/boot-cgi.sh) says of each machine: its state, the
// reports it made (time, state, percent, note), its hardware inventory.
import * as fs from "fs";
import * as path from "path";

export interface Report {
  /** Seconds since the epoch, as the server received it. */
  at: number;
  state: string;
  percent?: number;
  note: string;
}

export interface MachineRecord {
  /** The last state reported; "waiting" when the machine has reported nothing. */
  state: string;
  /** When the machine entered that state (its first report of it in a row), if it reported it. */
  since?: number;
  percent?: number;
  /** Every report kept, oldest first (the server keeps the last 200). */
  reports: Report[];
  /** A reinstall asked to replace the install its disks hold. */
  reinstall: boolean;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export function parseReports(text: string): Report[] {
  return text
    .split("\n")
    .map((line) => /^(\d+) ([a-z-]+) (\d+|-) ?(.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([, at, state, percent, note]) => ({ at: Number(at), state, ...(percent !== "-" ? { percent: Number(percent) } : {}), note }));
}

export function machineRecord(recordsDir: string, mac: string): MachineRecord {
  const reports = parseReports(read(path.join(recordsDir, `${mac}.log`)) ?? "");
  const state = read(path.join(recordsDir, mac))?.trim() || "waiting";
  let first: Report | undefined;
  for (let i = reports.length - 1; i >= 0 && reports[i].state === state; i--) first = reports[i];
  const last = reports[reports.length - 1];
  return {
    state,
    ...(first ? { since: first.at } : {}),
    ...(last?.state === state && last.percent !== undefined ? { percent: last.percent } : {}),
    reports,
    reinstall: fs.existsSync(path.join(recordsDir, `${mac}.replace`)),
  };
}

/** The inventory the machine's deploy environment reported, if it did. */
export function machineInventory(recordsDir: string, mac: string): Record<string, unknown> | undefined {
  const text = read(path.join(recordsDir, `${mac}.inventory.json`));
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
}

/**
 * A report made on the server's side (the machine powered through its BMC), kept as the CGI keeps
 * the machine's own: its state, and a line of its log. Only in a records folder that exists.
 */
export function recordReport(recordsDir: string, mac: string, state: string, note = ""): void {
  if (!fs.existsSync(recordsDir)) return;
  const line = `${Math.floor(Date.now() / 1000)} ${state} -${note ? ` ${note.replace(/[^A-Za-z0-9 ._:/()=,+-]/g, "_")}` : ""}\n`;
  fs.appendFileSync(path.join(recordsDir, `${mac}.log`), line, { mode: 0o600 });
  const temporary = path.join(recordsDir, `${mac}.tmp.${process.pid}`);
  fs.writeFileSync(temporary, `${state}\n`, { mode: 0o600 });
  fs.renameSync(temporary, path.join(recordsDir, mac));
}
