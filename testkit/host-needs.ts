// What the host-requirements test measures on this host instead of writing it down:
// the lines of host-requirements.txt, which words are programs on PATH, which are the
// shell's own builtins, busybox's applets, and an Ansible connection plugin's file
// and the Python modules it imports beyond the standard library and Ansible.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface Requirement {
  need: string;
  package: string;
}

/** The lines of a host-requirements.txt (comments and blank lines left out). */
export function readRequirements(text: string): Requirement[] {
  return text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter(Boolean)
    .map((line) => {
      const [need, pkg] = line.split(/\s+/);
      return { need, package: pkg };
    });
}

/** Whether NAME is a program on this host's PATH (sbin folders included, as root's). */
export function onHostPath(name: string): boolean {
  const dirs = `${process.env.PATH ?? ""}:/usr/local/sbin:/usr/sbin:/sbin`.split(":").filter(Boolean);
  return dirs.some((dir) => {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return fs.statSync(path.join(dir, name)).isFile();
    } catch {
      return false;
    }
  });
}

/** Those of NAMES that Debian's sh (dash) runs itself: builtins and keywords. */
export function shellBuiltins(names: string[]): Set<string> {
  const out = execFileSync("dash", ["-c", 'for name; do command -V "$name" 2>/dev/null || :; done', "dash", ...names], { encoding: "utf8" });
  return new Set(
    out
      .split("\n")
      .map((line) => /^(\S+) is a (?:special )?shell (?:builtin|keyword)$/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined),
  );
}

/** The applets of this host's busybox (the deploy environment's, build-deploy-initramfs.sh copies it). */
export function busyboxApplets(): Set<string> {
  return new Set(execFileSync("busybox", ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean));
}

/**
 * The file of the Ansible connection plugin FQCN (community.libvirt.libvirt_qemu) as the
 * Python on ansible-playbook's #! line finds it, and the modules outside Python's standard
 * library and Ansible that it imports.
 */
export function connectionPlugin(fqcn: string): { file: string; imports: string[] } {
  const [namespace, collection, plugin] = fqcn.split(".");
  const ansiblePlaybook = execFileSync("sh", ["-c", "command -v ansible-playbook"], { encoding: "utf8" }).trim();
  const python = fs
    .readFileSync(ansiblePlaybook, "utf8")
    .split("\n")[0]
    .replace(/^#!\s*/, "")
    .split(/\s+/);
  const probe =
    "import importlib.util, sys; " +
    `print(importlib.util.find_spec("ansible_collections.${namespace}.${collection}.plugins.connection.${plugin}").origin); ` +
    "print(' '.join(sys.stdlib_module_names))";
  const [file, stdlib] = execFileSync(python[0], [...python.slice(1), "-c", probe], { encoding: "utf8" }).split("\n");
  const standard = new Set([...stdlib.split(" "), "__future__", "ansible", "ansible_collections"]);
  const statements = fs.readFileSync(file, "utf8").matchAll(/^\s*(?:import\s+([A-Za-z_][\w.]*)|from\s+([A-Za-z_][\w.]*)\s+import\b)/gm);
  const imported = [...statements].map((match) => (match[1] ?? match[2]).split(".")[0]);
  return { file, imports: [...new Set(imported)].filter((module) => !standard.has(module)).sort() };
}
