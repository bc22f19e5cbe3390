// Which cdktf command is synthesizing this app. The cdktf CLI runs the app as a child process
// and tells it nothing of why, so this reads the CLI's own arguments from /proc: the nearest
// ancestor whose program is cdktf (`node .../cdktf deploy lab`, however npx or a shell started it).
import * as fs from "fs";

const COMMANDS = new Set(["deploy", "apply", "destroy", "diff", "plan", "synth", "watch", "output", "list", "get", "init"]);

/** The parent of pid, from /proc/PID/stat (its 4th field, after the program name in parentheses). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(parent) && parent > 0 ? parent : undefined;
  } catch {
    return undefined;
  }
}

/** The cdktf command (deploy, diff, synth, ...) of the nearest cdktf CLI above pid, or undefined when none runs this app. */
export function cdktfCommand(pid: number = process.ppid): string | undefined {
  for (let depth = 0, at: number | undefined = pid; at !== undefined && at > 1 && depth < 12; depth++, at = parentOf(at)) {
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${at}/cmdline`, "utf8").split("\0");
    } catch {
      return undefined;
    }
    const cli = args.findIndex((arg) => /(^|\/)cdktf$/.test(arg));
    if (cli >= 0) return args.slice(cli + 1).find((arg) => COMMANDS.has(arg));
  }
  return undefined;
}

/** True when this synth is for a deploy (cdktf deploy or apply): what it plans is then applied. */
export function synthForDeploy(): boolean {
  const command = cdktfCommand();
  return command === "deploy" || command === "apply";
}
