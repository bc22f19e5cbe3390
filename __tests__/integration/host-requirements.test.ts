// scripts/host/host-requirements.txt is the one list of what the build host needs.
// On a clean Debian minbase root of each release, install-packages.sh (run inside it)
// installs the list and check-requirements.sh then finds every line; the check names
// what a root lacks. And the list is whole: every program the scripts run that minbase
// does not bring, and every module the Ansible connections they use import, is listed.
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { LAYOUT_NEEDS } from "../../lib/config/layout";
import { busyboxApplets, connectionPlugin, onHostPath, readRequirements, shellBuiltins } from "../../testkit/host-needs";
import { checkRequirements, HostRelease, hostRoot, HostRoot } from "../../testkit/host-root";
import { projectCommands, projectFiles, projectFunctions } from "../../testkit/shell-commands";

const RELEASES: HostRelease[] = ["bookworm", "trixie"];
const SCANNED = ["scripts", "deploy-env", "bin"];
const requirementsFile = path.join(PROJECT_DIR, "scripts", "host", "host-requirements.txt");
const requirements = readRequirements(fs.readFileSync(requirementsFile, "utf8"));

// What the checkout and the README's requirements bring rather than a Debian package of the
// list: Node.js 20 with npm, Go (install-libvirt-provider.sh builds the provider with it, and
// install-engine.sh OpenTofu), the engine install-engine.sh finds or builds, and node_modules/.bin.
const PROVIDED = new Set(["node", "npm", "npx", "go", "terraform", "tofu", ...fs.readdirSync(path.join(PROJECT_DIR, "node_modules", ".bin"))]);

// What the deploy environment (deploy-env/, in the initramfs of build-deploy-initramfs.sh) brings
// itself: busybox's applets, the programs that script copies from the host (PROGRAMS, and zstd
// into initramfs.img), those a layout takes from the image, and the deploy scripts.
function deployEnvironmentPrograms(): Set<string> {
  const build = fs.readFileSync(path.join(PROJECT_DIR, "scripts", "steps", "build-deploy-initramfs.sh"), "utf8");
  const programs = /^PROGRAMS="([^"]+)"/m.exec(build)?.[1].split(/\s+/) ?? [];
  const intoInitramfs = [...build.matchAll(/^\s*copy_program "\$root" (\S+)$/gm)].map((match) => match[1]);
  if (programs.length === 0 || intoInitramfs.length === 0) throw new Error('build-deploy-initramfs.sh no longer sets PROGRAMS or copies a program with copy_program "$root": read it again');
  const fromImage = Object.values(LAYOUT_NEEDS).flatMap((needs) => needs.programs);
  return new Set([...busyboxApplets(), ...programs, ...intoInitramfs, ...fromImage, ...fs.readdirSync(path.join(PROJECT_DIR, "deploy-env"))]);
}

const roots = new Map<HostRelease, HostRoot>();
beforeAll(() => {
  // Cached by the list and the host scripts: minutes when one of them changed, else a hash.
  for (const release of RELEASES) roots.set(release, hostRoot(release));
}, 2 * 1_800_000);

describe.each(RELEASES)("a fresh Debian %s host", (release) => {
  test("install-packages.sh installs the list, and check-requirements.sh then finds every line", () => {
    const check = checkRequirements(roots.get(release)!.root);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });

  test("check-requirements.sh names a command and a Python module the host lacks, and fails", () => {
    const lacking = "mkfs.btrfs               btrfs-progs\npython:guestfs@ansible-playbook python3-guestfs\n";
    const check = checkRequirements(roots.get(release)!.root, fs.readFileSync(requirementsFile, "utf8") + lacking);
    expect(check.status).toBe(1);
    expect(check.stderr).toContain("still missing: mkfs.btrfs (btrfs-progs) python:guestfs@ansible-playbook (python3-guestfs);");
  });
});

test("every program the scripts run that Debian's minbase lacks is listed", () => {
  const listed = new Set(requirements.flatMap(({ need }) => (need.startsWith("/") ? [need, path.basename(need)] : [need])));
  // Measured, not written down: what every release's clean minbase root holds.
  const minbase = [...roots.values()].map((root) => root.minbaseCommands).reduce((a, b) => new Set([...a].filter((name) => b.has(name))));
  const functions = projectFunctions(PROJECT_DIR, SCANNED);
  const uses = projectCommands(PROJECT_DIR, SCANNED).filter(({ command }) => !functions.has(command) && onHostPath(command));
  // The reader sees what the scripts are known to run (a pipeline's tail, a `command -v` loop, env's command).
  expect(uses.map(({ command }) => command)).toEqual(expect.arrayContaining(["qemu-img", "sfdisk", "jq", "zstd", "ansible-playbook", "virsh"]));
  const builtins = shellBuiltins([...new Set(uses.map(({ command }) => command))]);
  const deployEnvironment = deployEnvironmentPrograms();
  const unlisted = new Map<string, string>();
  for (const { command, file, line } of uses) {
    if (builtins.has(command) || minbase.has(command) || PROVIDED.has(command) || listed.has(command)) continue;
    if (file.startsWith("deploy-env/") && deployEnvironment.has(command)) continue;
    if (!unlisted.has(command)) unlisted.set(command, `${command} (${file}:${line})`);
  }
  expect([...unlisted.values()]).toEqual([]);
});

test("the Ansible connections the scripts use are listed, with every module they import for ansible-playbook's Python", () => {
  const connections = new Set(
    projectFiles(PROJECT_DIR, SCANNED).flatMap((file) =>
      [...fs.readFileSync(path.join(PROJECT_DIR, file), "utf8").matchAll(/ansible_connection["']?[=:]\s*"?(\w+\.\w+\.\w+)/g)].map((match) => match[1]),
    ),
  );
  expect([...connections].sort()).toEqual(["community.general.chroot", "community.libvirt.libvirt_qemu"]);
  const listed = new Set(requirements.map(({ need }) => need));
  const unlisted = [...connections].flatMap((connection) => {
    const plugin = connectionPlugin(connection);
    return [plugin.file, ...plugin.imports.map((module) => `python:${module}@ansible-playbook`)].filter((need) => !listed.has(need));
  });
  expect(unlisted).toEqual([]);
});
