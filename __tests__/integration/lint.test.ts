// The lint gate: every shell script of the project passes shellcheck, every
// directive that silences shellcheck or ESLint says why, file modes follow one
// rule, the TypeScript compiles without an error, ESLint (eslint.config.js)
// finds nothing and Prettier (.prettierrc.json) would change nothing. What it
// reads is the working tree's tracked and new files, so a file added without
// `git add` is judged too.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";

/** Tracked and untracked (not ignored) files of the working tree that exist. */
function projectFiles(): string[] {
  const list = (args: string[]) => execFileSync("git", args, { cwd: PROJECT_DIR, encoding: "utf8" }).split("\n").filter(Boolean);
  return [...new Set([...list(["ls-files"]), ...list(["ls-files", "--others", "--exclude-standard"])])]
    .filter((file) => fs.existsSync(path.join(PROJECT_DIR, file)) && fs.statSync(path.join(PROJECT_DIR, file)).isFile())
    .sort();
}

const SHELL_LINE = /^#!\s*(\/bin\/(ba|da)?sh|\/usr\/bin\/env (ba|da)?sh)\b/;
const firstLine = (file: string) => fs.readFileSync(path.join(PROJECT_DIR, file), "utf8").split("\n", 1)[0];

/** The shell scripts: *.sh, and files whose #! line names a shell. */
function shellScripts(): string[] {
  return projectFiles().filter((file) => file.endsWith(".sh") || SHELL_LINE.test(firstLine(file)));
}

// Findings left in files whose bytes are part of the key of every cached customization layer
// (customize/layers.sh, chain_root_key): changing them rebuilds every image on every host.
// They are fixed with the next change that must touch those files; each must still be found,
// so a fixed one has to leave this list.
const KNOWN_FINDINGS = [
  "scripts/steps/customize/host-apt.sh SC2013",
  "scripts/steps/customize/host-apt.sh SC2013",
  "scripts/steps/customize/work.sh SC2034",
  "scripts/steps/lib/image-mount.sh SC2086",
];

interface Finding {
  file: string;
  line: number;
  code: number;
  level: string;
  message: string;
}

/** shellcheck on FILES, following what they source; a file without a #! line is a part sourced by sh. */
function shellcheck(files: string[], shell?: string): Finding[] {
  if (files.length === 0) return [];
  const result = spawnSync("shellcheck", ["-x", "-P", "SCRIPTDIR", "-f", "json1", ...(shell ? ["-s", shell] : []), ...files], {
    cwd: PROJECT_DIR,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  // 0: nothing found; 1: findings. Anything else is shellcheck failing, not a result.
  if (result.status !== 0 && result.status !== 1) throw new Error(`shellcheck exited ${result.status}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { comments: Finding[] }).comments;
}

describe("lint gate", () => {
  const scripts = shellScripts();

  test("the scripts are found: the project's own programs, parts and profiles' scripts", () => {
    for (const file of ["scripts/steps/pxe-server.sh", "deploy-env/restore.sh", "deploy-env/layouts/zfs.sh", "bin/btw", "deploy-env/udhcpc.script", "scripts/steps/customize/work.sh"]) {
      expect(scripts).toContain(file);
    }
  });

  test("shellcheck finds nothing, at any level, beyond the findings listed with their reason", () => {
    const withShell = scripts.filter((file) => firstLine(file).startsWith("#!"));
    const sourced = scripts.filter((file) => !firstLine(file).startsWith("#!"));
    const findings = [...shellcheck(withShell), ...shellcheck(sourced, "sh")];
    const key = (finding: Finding) => `${finding.file} SC${finding.code}`;
    const count = (list: string[]) => list.reduce((counts, item) => counts.set(item, (counts.get(item) ?? 0) + 1), new Map<string, number>());
    const [found, known] = [count(findings.map(key)), count(KNOWN_FINDINGS)];
    const unknown = findings.filter((finding) => found.get(key(finding))! > (known.get(key(finding)) ?? 0));
    expect(unknown.map((finding) => `${finding.file}:${finding.line}: SC${finding.code} (${finding.level}) ${finding.message}`)).toEqual([]);
    // A listed finding that is gone leaves the list.
    expect(findings.map(key).sort()).toEqual([...KNOWN_FINDINGS].sort());
  }, 120_000);

  test("shellcheck itself runs: a file with a known fault is found", () => {
    const dir = fs.mkdtempSync(path.join(PROJECT_DIR, ".lint-probe-"));
    try {
      fs.writeFileSync(path.join(dir, "probe.sh"), "#!/bin/sh\nfor file in $(ls); do echo $file; done\n");
      const codes = shellcheck([path.relative(PROJECT_DIR, path.join(dir, "probe.sh"))]).map((finding) => finding.code);
      expect(codes).toEqual(expect.arrayContaining([2045, 2086]));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("every directive that silences shellcheck says why, after a #", () => {
    const silent: string[] = [];
    for (const file of scripts) {
      fs.readFileSync(path.join(PROJECT_DIR, file), "utf8")
        .split("\n")
        .forEach((line, index) => {
          const directive = /#\s*shellcheck\s+(.*)$/.exec(line);
          if (!directive || !/\bdisable=/.test(directive[1])) return;
          // "disable=SC2086 # a list of paths": the reason follows the codes.
          if (!/disable=[A-Z0-9,]+(\s+\S+=\S+)*\s+#\s*\S/.test(directive[1])) silent.push(`${file}:${index + 1}: ${line.trim()}`);
        });
    }
    expect(silent).toEqual([]);
  });

  test("file modes follow one rule: a script with a #! line is a program (755), a part sourced by others has none (644)", () => {
    const wrong = scripts
      .map((file) => ({ file, mode: fs.statSync(path.join(PROJECT_DIR, file)).mode & 0o777, program: firstLine(file).startsWith("#!") }))
      .filter(({ mode, program }) => mode !== (program ? 0o755 : 0o644))
      .map(({ file, mode, program }) => `${file}: ${mode.toString(8)}, ${program ? "has a #! line: 755" : "no #! line: 644"}`);
    expect(wrong).toEqual([]);
  });

  const tool = (name: string, args: string[]) => {
    const result = spawnSync(path.join(PROJECT_DIR, "node_modules", ".bin", name), args, { cwd: PROJECT_DIR, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (result.error) throw result.error;
    return result;
  };
  const scriptFiles = () => projectFiles().filter((file) => /\.(ts|js)$/.test(file) && !file.startsWith(".gen/"));

  test("ESLint finds nothing, and every directive that silences it says why, after --", () => {
    const result = tool("eslint", ["--max-warnings", "0", ...scriptFiles()]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
    const silent = scriptFiles().flatMap((file) =>
      fs
        .readFileSync(path.join(PROJECT_DIR, file), "utf8")
        .split("\n")
        .map((line, index) => ({ line, where: `${file}:${index + 1}` }))
        .filter(({ line }) => /eslint-disable/.test(line) && !/eslint-disable(-next-line|-line)?\s+[\w@/-]+(,\s*[\w@/-]+)*\s+--\s+\S/.test(line) && !/\/eslint-disable/.test(line))
        .map(({ line, where }) => `${where}: ${line.trim()}`),
    );
    expect(silent).toEqual([]);
  }, 300_000);

  test("Prettier would change no TypeScript or JavaScript file", () => {
    const result = tool("prettier", ["--list-different", ...scriptFiles()]);
    expect(result.stdout.split("\n").filter(Boolean)).toEqual([]);
  }, 300_000);

  test("the TypeScript compiles without an error (tsc --noEmit)", () => {
    const result = spawnSync(path.join(PROJECT_DIR, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", PROJECT_DIR], { cwd: PROJECT_DIR, encoding: "utf8" });
    if (result.error) throw result.error;
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  }, 300_000);
});
