// The commands a POSIX shell script runs on its own host, read from its text: the
// words in command position (line start, after | ; & && || ( $( ` and the keywords),
// through the prefixes that run their argument (exec, command, env, setpriv,
// unshare, flock, timeout, xargs, find -exec, trap, sh -c, and the script's own
// functions that run "$@"), `command -v NAME`, and the words of a `for` loop that
// checks each with `command -v`. What runs inside a chroot, heredoc bodies (data, or
// scripts for another machine) and quoted text are not commands of the host. A
// pragmatic reader, not a parser: the host-requirements test keeps only the words
// that are programs on the host's PATH.
import * as fs from "fs";
import * as path from "path";

/** A word of a script: its text with quotes removed, and whether it holds no expansion. */
interface Word {
  text: string;
  raw: string;
  literal: boolean;
  line: number;
}

/** A command word found in a script: the program's name (or absolute path) and where. */
export interface CommandUse {
  command: string;
  file: string;
  line: number;
}

const KEYWORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "in"]);
// Keywords after which a command starts (a case statement too).
const OPENERS = new Set(["if", "then", "else", "elif", "do", "while", "until", "!", "{"]);
// Options that take the next word as their value, per prefix command; and how many plain
// words (timeout's duration, flock's file) come before the command it runs.
const PREFIXES: Record<string, { valued: string[]; positional: number }> = {
  exec: { valued: ["-a"], positional: 0 },
  nohup: { valued: [], positional: 0 },
  nice: { valued: ["-n", "--adjustment"], positional: 0 },
  env: { valued: ["-C", "--chdir", "-u", "--unset", "-S", "--split-string"], positional: 0 },
  setpriv: {
    valued: ["--pdeathsig", "--reuid", "--regid", "--groups", "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits", "--selinux-label", "--apparmor-profile"],
    positional: 0,
  },
  unshare: { valued: ["--propagation", "-S", "--setuid", "-G", "--setgid", "-w", "--wd", "-R", "--root"], positional: 0 },
  flock: { valued: ["-w", "--timeout", "-E", "--conflict-exit-code"], positional: 1 },
  timeout: { valued: ["-s", "--signal", "-k", "--kill-after"], positional: 1 },
  xargs: { valued: ["-I", "-n", "-P", "-d", "-L", "-s", "-a", "-E"], positional: 0 },
  stdbuf: { valued: ["-i", "-o", "-e"], positional: 0 },
};

interface Lexed {
  commands: Word[][];
  /** Functions the script defines; true for those that run their arguments ("$@" as a command). */
  functions: Map<string, boolean>;
}

class Lexer {
  private pos = 0;
  private line = 1;
  private pending: { delimiter: string; quoted: boolean; tabs: boolean }[] = [];
  private currentFunction: string | undefined;
  readonly out: Lexed = { commands: [], functions: new Map() };

  constructor(
    private readonly src: string,
    firstLine = 1,
  ) {
    this.line = firstLine;
  }

  run(): Lexed {
    this.list(undefined);
    return this.out;
  }

  private at(offset = 0): string {
    return this.src[this.pos + offset] ?? "";
  }

  /** Commands until the end, or until `closer` (the end of a $( ) or ` ` substitution). */
  private list(closer: ")" | "`" | undefined): void {
    let words: Word[] = [];
    let depth = 0;
    const cases: ("header" | "pattern" | "body")[] = [];
    const flush = () => {
      if (words.length > 0) {
        if (words[0].raw === '"$@"' && this.currentFunction) this.out.functions.set(this.currentFunction, true);
        this.out.commands.push(words);
      }
      words = [];
    };
    while (this.pos < this.src.length) {
      const c = this.at();
      const inPattern = cases[cases.length - 1] === "pattern";
      if (c === " " || c === "\t") this.pos++;
      else if (c === "\\" && this.at(1) === "\n") {
        this.pos += 2;
        this.line++;
      } else if (c === "#") while (this.pos < this.src.length && this.at() !== "\n") this.pos++;
      else if (c === "\n") {
        flush();
        this.pos++;
        this.line++;
        this.heredocs();
      } else if (c === "`" && closer === "`") {
        this.pos++;
        flush();
        return;
      } else if (c === ")") {
        this.pos++;
        if (inPattern) cases[cases.length - 1] = "body";
        else if (depth === 0 && closer === ")") return flush();
        else depth--;
        flush();
      } else if (c === "(") {
        this.pos++;
        if (!inPattern) depth++;
        flush();
      } else if (c === ";" || c === "&" || c === "|") {
        const op = /^(;;&|;;|;&|&&|\|\||\|&|;|&|\|)/.exec(this.src.slice(this.pos, this.pos + 3))?.[0] ?? c;
        this.pos += op.length;
        if ((op.startsWith(";;") || op === ";&") && cases.length > 0) cases[cases.length - 1] = "pattern";
        if (!inPattern) flush();
      } else if (c === "<" || c === ">") this.redirection();
      else {
        const word = this.word();
        if (/^\d+$/.test(word.raw) && (this.at() === "<" || this.at() === ">")) continue;
        if (inPattern) {
          if (word.raw === "esac") cases.pop();
          continue;
        }
        if (cases[cases.length - 1] === "header") {
          if (word.raw === "in") {
            cases[cases.length - 1] = "pattern";
            words = [];
          }
          continue;
        }
        const atStart = words.every((previous) => OPENERS.has(previous.raw));
        if (atStart && word.raw === "case") {
          cases.push("header");
          continue;
        }
        if (atStart && word.raw === "esac" && cases.length > 0) {
          cases.pop();
          continue;
        }
        const definition = /^[ \t]*\([ \t]*\)/.exec(this.src.slice(this.pos, this.pos + 16));
        if (words.length === 0 && definition && /^[A-Za-z_][\w-]*$/.test(word.raw)) {
          this.pos += definition[0].length;
          this.currentFunction = word.raw;
          if (!this.out.functions.has(word.raw)) this.out.functions.set(word.raw, false);
          continue;
        }
        words.push(word);
      }
    }
    flush();
  }

  /** A redirection: its operator and target word (a heredoc's delimiter is remembered). */
  private redirection(): void {
    const op = /^(<<<|<<-|<<|>>|>&|<&|>\||<>|<|>)/.exec(this.src.slice(this.pos, this.pos + 3))?.[0] ?? this.at();
    this.pos += op.length;
    while (this.at() === " " || this.at() === "\t") this.pos++;
    const target = this.word();
    if (op === "<<" || op === "<<-") this.pending.push({ delimiter: target.text, quoted: /['"\\]/.test(target.raw), tabs: op === "<<-" });
  }

  /** Heredoc bodies after a newline: skipped, except the substitutions of an unquoted one (they run). */
  private heredocs(): void {
    for (const heredoc of this.pending.splice(0)) {
      while (this.pos < this.src.length) {
        const end = this.src.indexOf("\n", this.pos);
        const lineEnd = end < 0 ? this.src.length : end;
        const text = this.src.slice(this.pos, lineEnd);
        if ((heredoc.tabs ? text.replace(/^\t+/, "") : text) === heredoc.delimiter) {
          this.pos = lineEnd + 1;
          this.line++;
          break;
        }
        while (!heredoc.quoted && this.pos < lineEnd) {
          if (this.at() === "\\") this.pos += 2;
          else if (!((this.at() === "$" || this.at() === "`") && this.expansion())) this.pos++;
        }
        this.pos = Math.max(this.pos, lineEnd) + 1;
        this.line++;
      }
    }
  }

  /** A $ or ` expansion at pos: lexes the commands of a substitution; true when it was one. */
  private expansion(): boolean {
    if (this.at() === "`") {
      this.pos++;
      this.list("`");
      return true;
    }
    const next = this.at(1);
    if (!/[({\w@*#?$!-]/.test(next)) return false;
    this.pos++;
    if (next === "(" && this.at(1) === "(") this.skipBalanced("(", ")");
    else if (next === "(") {
      this.pos++;
      this.list(")");
    } else if (next === "{") this.skipBalanced("{", "}");
    else if (/[\d@*#?$!-]/.test(next)) this.pos++;
    else while (/\w/.test(this.at())) this.pos++;
    return true;
  }

  private skipBalanced(open: string, close: string): void {
    let depth = 0;
    do {
      const c = this.at();
      if (c === "\n") this.line++;
      if (c === "\\") this.pos++;
      else if (c === open) depth++;
      else if (c === close) depth--;
      this.pos++;
    } while (depth > 0 && this.pos < this.src.length);
  }

  /** One word: quotes removed; an expansion leaves a NUL in its text (so it is not literal). */
  private word(): Word {
    const start = this.pos;
    const line = this.line;
    let text = "";
    while (this.pos < this.src.length) {
      const c = this.at();
      if (" \t\n;&|()<>".includes(c)) break;
      if (c === "'") {
        const end = this.src.indexOf("'", this.pos + 1);
        const stop = end < 0 ? this.src.length : end;
        text += this.src.slice(this.pos + 1, stop);
        this.line += (this.src.slice(this.pos, stop).match(/\n/g) ?? []).length;
        this.pos = stop + 1;
      } else if (c === '"') {
        this.pos++;
        while (this.pos < this.src.length && this.at() !== '"') {
          if (this.at() === "\\") {
            text += this.at(1);
            this.pos += 2;
          } else if ((this.at() === "$" || this.at() === "`") && this.expansion()) text += "\0";
          else {
            if (this.at() === "\n") this.line++;
            text += this.at();
            this.pos++;
          }
        }
        this.pos++;
      } else if (c === "\\") {
        if (this.at(1) === "\n") this.line++;
        else text += this.at(1);
        this.pos += 2;
      } else if ((c === "$" || c === "`") && this.expansion()) text += "\0";
      else {
        text += c;
        this.pos++;
      }
    }
    return { text, raw: this.src.slice(start, this.pos), literal: !text.includes("\0"), line };
  }
}

/** The commands SCRIPT (the text of FILE) runs on its host; `wrappers` names functions (of any script) that run "$@". */
export function scriptCommands(file: string, script: string, wrappers: Set<string>): CommandUse[] {
  const uses: CommandUse[] = [];
  const lexed = new Lexer(script).run();
  const emit = (word: Word) => {
    if (word.literal && word.text !== "") uses.push({ command: word.text, file, line: word.line });
  };
  const code = (word: Word | undefined) => {
    if (word?.literal) for (const command of new Lexer(word.text, word.line).run().commands) run(command);
  };
  const run = (words: Word[]): void => {
    let i = 0;
    while (i < words.length && words[i].literal && (KEYWORDS.has(words[i].text) || /^[A-Za-z_]\w*=/.test(words[i].raw))) i++;
    const first = words[i];
    if (!first?.literal) return;
    const rest = words.slice(i + 1);
    if (first.text === "for") return forLoop(rest);
    if (first.text === "chroot") return emit(first);
    emit(first);
    if (first.text === "command") {
      if (rest[0]?.text === "-v" || rest[0]?.text === "-V") rest.slice(1).forEach(emit);
      else run(rest.filter((word) => word.text !== "-p"));
    } else if (first.text in PREFIXES) {
      const { valued, positional } = PREFIXES[first.text];
      let j = 0;
      while (j < rest.length && (rest[j].text.startsWith("-") || (first.text === "env" && /^[A-Za-z_]\w*=/.test(rest[j].raw)))) {
        j += valued.includes(rest[j].text) ? 2 : 1;
      }
      run(rest.slice(j + positional));
    } else if (first.text === "find") {
      rest.forEach((word, k) => ["-exec", "-execdir", "-ok"].includes(word.text) && run(rest.slice(k + 1)));
    } else if (first.text === "trap") code(rest[0]);
    else if (["sh", "dash", "bash"].includes(first.text) && rest[0]?.text === "-c") code(rest[1]);
    else if (wrappers.has(first.text)) run(rest);
  };
  // `for NAME in WORDS` whose body checks "$NAME" with command -v: WORDS are commands, a
  // $VARIABLE among them the words of its literal assignment in the same script.
  const forLoop = (words: Word[]) => {
    const name = words[0]?.text;
    if (!name || words[1]?.text !== "in" || !new RegExp(`command -v "?\\$\\{?${name}\\b`).test(script)) return;
    for (const word of words.slice(2)) {
      const variable = /^\$\{?(\w+)\}?$/.exec(word.raw)?.[1];
      if (!variable) emit(word);
      const value = variable && new RegExp(`^${variable}=(["'])([^]*?)\\1`, "m").exec(script)?.[2];
      if (value) for (const command of value.split(/\s+/).filter(Boolean)) uses.push({ command, file, line: word.line });
    }
  };
  lexed.commands.forEach(run);
  return uses;
}

/** Functions SCRIPT defines, each with whether it runs its arguments ("$@" as a command). */
export function scriptFunctions(script: string): Map<string, boolean> {
  return new Lexer(script).run().functions;
}

/** The programs a TypeScript file starts by a literal name (spawnSync("virsh", ...)). */
export function typescriptCommands(file: string, source: string): CommandUse[] {
  const uses: CommandUse[] = [];
  source.split("\n").forEach((text, index) => {
    for (const match of text.matchAll(/\b(?:spawnSync|spawn|execFileSync|execFile)\(\s*"([^"]+)"/g)) {
      uses.push({ command: match[1], file, line: index + 1 });
    }
  });
  return uses;
}

/** Every command the shell scripts (and the TypeScript's literal spawns) under DIRS of PROJECT run; paths relative to PROJECT. */
export function projectCommands(project: string, dirs: string[]): CommandUse[] {
  const text = (file: string) => fs.readFileSync(path.join(project, file), "utf8");
  // Functions are shared: a step script sources its helpers from lib/.
  const scripts = shellScripts(project, dirs);
  const wrappers = new Set(scripts.flatMap((file) => [...scriptFunctions(text(file))].filter(([, runsArgs]) => runsArgs).map(([name]) => name)));
  return [
    ...scripts.flatMap((file) => scriptCommands(file, text(file), wrappers)),
    ...projectFiles(project, dirs)
      .filter((file) => file.endsWith(".ts"))
      .flatMap((file) => typescriptCommands(file, text(file))),
  ];
}

/** The names of the functions the shell scripts under DIRS of PROJECT define. */
export function projectFunctions(project: string, dirs: string[]): Set<string> {
  return new Set(shellScripts(project, dirs).flatMap((file) => [...scriptFunctions(fs.readFileSync(path.join(project, file), "utf8")).keys()]));
}

/** The shell scripts under DIRS of PROJECT: *.sh, and files whose #! line names sh. */
function shellScripts(project: string, dirs: string[]): string[] {
  return projectFiles(project, dirs).filter((file) => file.endsWith(".sh") || /^#!\s*\/bin\/(ba|da)?sh\b/.test(fs.readFileSync(path.join(project, file), "utf8")));
}

/** The files under DIRS of PROJECT, relative to it. */
export function projectFiles(project: string, dirs: string[]): string[] {
  return dirs
    .flatMap((dir) => filesUnder(path.join(project, dir)))
    .map((file) => path.relative(project, file))
    .sort();
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : entry.isFile() ? [full] : [];
  });
}
