// What readiness shows of a VM's console while it waits (scripts/steps/lib/console-line.sh):
// the last line, without escape sequences or indent, never one of cloud-init's own (they carry
// what the user data's commands print).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR } from "../../lib/paths";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-console-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function consoleLine(text: string | undefined): string {
  const log = path.join(work, "console.log");
  if (text === undefined) fs.rmSync(log, { force: true });
  else fs.writeFileSync(log, text);
  const run = spawnSync("sh", ["-c", `. ${path.join(SCRIPTS_DIR, "lib", "console-line.sh")}; console_line "$1"`, "sh", log], { encoding: "utf8" });
  expect(run.status).toBe(0);
  return run.stdout;
}

describe("console_line", () => {
  test("the last line, plain and unindented; not cloud-init's; nothing without a log or a line", () => {
    const boot = "BdsDxe: loading Boot0001\r\n\x1b[0;32m  OK  \x1b[0m] Started ssh.service - OpenBSD Secure Shell server.\r\n";
    expect(consoleLine(boot)).toBe(": OK  ] Started ssh.service - OpenBSD Secure Shell server.");
    expect(consoleLine(`${boot}[   12.5] cloud-init[612]: echo the-user-data-secret\r\n\r\n`)).toBe(": OK  ] Started ssh.service - OpenBSD Secure Shell server.");
    expect(consoleLine(`         Starting cloud-init-network.service - Cloud-init: Network Stage...\n`)).toBe(": Starting cloud-init-network.service - Cloud-init: Network Stage...");
    expect(consoleLine(`${"x".repeat(300)}\n`)).toBe(`: ${"x".repeat(120)}`);
    expect(consoleLine("\r\n\r\n")).toBe("");
    expect(consoleLine(undefined)).toBe("");
  });
});
