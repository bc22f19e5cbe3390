// Which cdktf command runs the app, read from the nearest cdktf CLI among a process's ancestors.
import { ChildProcess, spawn, spawnSync } from "child_process";
import { cdktfCommand } from "../../lib/cdktf-command";

const children: ChildProcess[] = [];
afterAll(() => children.forEach((child) => child.kill("SIGKILL")));

/** A shell whose command line reads like the cdktf CLI's (`.../node_modules/.bin/cdktf ARGS`), running a sleep: returns the sleep's pid. */
function underCli(args: string[], program = "/project/node_modules/.bin/cdktf"): Promise<number> {
  const shell = spawn("sh", ["-c", "sleep 60 & wait", ...args], { argv0: program, stdio: "ignore" });
  children.push(shell);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const sleep = spawnSync("pgrep", ["-P", String(shell.pid)], { encoding: "utf8" }).stdout.trim();
      if (sleep) resolve(Number(sleep.split("\n")[0]));
      else if (Date.now() - started > 5000) reject(new Error("the sleep did not start"));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

describe("cdktfCommand", () => {
  test("finds the command of the cdktf CLI above a process, past other processes and options", async () => {
    expect(cdktfCommand(await underCli(["sh", "deploy", "lab", "--auto-approve"]))).toBe("deploy");
    expect(cdktfCommand(await underCli(["sh", "--log-level", "debug", "diff", "lab"]))).toBe("diff");
  });

  test("a program only named like cdktf, or no cdktf at all, gives nothing", async () => {
    expect(cdktfCommand(await underCli(["sh", "deploy"], "/usr/bin/not-cdktf"))).toBeUndefined();
    expect(cdktfCommand(process.pid)).toBeUndefined();
  });
});
