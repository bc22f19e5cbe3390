// A profile's Ansible playbook (ansible/playbook.yml) applied to Debian's real
// image through Ansible's chroot connection: what its role does is in the image,
// nothing of Ansible is, and a failing task fails the build naming the profile,
// the play and the task. The profiles are in __tests__/fixtures/profiles.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { installedPackages, runScript, withImageRoot } from "../../testkit/image";
import { hostLeftovers } from "../../testkit/libvirt";

const PROFILES = path.join(PROJECT_DIR, "__tests__", "fixtures", "profiles");

describe("customize-image.sh applies a profile's Ansible playbook in the chroot", () => {
  let work: string;
  let base: string;
  let baseWithoutPythonApt: string;
  const customize = (profilesDir: string, profile: string, from: string, output: string) =>
    runScript("customize-image.sh", customizeArgs(readProfile(profilesDir, profile, "trixie"), "trixie", from, output, { secureBoot: false }));
  /** Paths named like Ansible in an image (Debian's packages ship a few: cloud-init's module, completions). */
  const ansiblePaths = (root: string) => execFileSync("find", [".", "-xdev", "-iname", "*ansible*"], { cwd: root, encoding: "utf8" }).split("\n").filter(Boolean).sort();
  const outputsNamed = (name: string) => fs.readdirSync(work).filter((file) => file.startsWith(name));

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-ansible-"));
    base = acquireFixtureBase("trixie", work);
    // Debian's image has python3-apt, which Ansible's apt module needs: without it the build must lend it, not install it.
    baseWithoutPythonApt = path.join(work, "no-python-apt.qcow2");
    const run = customize(PROFILES, "no-python-apt", base, baseWithoutPythonApt);
    if (run.status !== 0) throw new Error(`the base without python3-apt was not built:\n${run.stderr.slice(-3000)}`);
  }, 1_800_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work)).toEqual([]);
  });

  test("a role installs a package, templates a file with its vars and enables a unit that does not start; nothing of Ansible stays", () => {
    const output = path.join(work, "ansible-role.qcow2");
    const run = customize(PROFILES, "ansible-role", baseWithoutPythonApt, output);
    expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(run.stderr).toContain("customize-image: profile ansible-role: checking ansible/playbook.yml");
    expect(run.stderr).toContain("customize-image: profile ansible-role: running ansible/playbook.yml");
    expect(run.stderr).toContain("lending python3-apt to the image's python3 for the playbooks");
    // Ansible's own progress is in the build log.
    expect(run.stderr).toMatch(/TASK \[hello : Enable the hello unit\][\s\S]*changed: \[image\]/);
    expect(run.stderr).not.toMatch(/left in the chroot/);
    const before = withImageRoot(baseWithoutPythonApt, (root) => ({ packages: installedPackages(root), ansiblePaths: ansiblePaths(root) }));
    expect(before.packages.has("python3-apt")).toBe(false);
    withImageRoot(output, (root) => {
      const packages = installedPackages(root);
      // The role's package and nothing Ansible needed for itself.
      expect([...packages].filter((name) => !before.packages.has(name))).toEqual(["tree"]);
      expect([...before.packages].filter((name) => !packages.has(name))).toEqual([]);
      expect(fs.existsSync(path.join(root, "usr/bin/tree"))).toBe(true);
      // One value from group_vars, one from the role's defaults, one the build passes.
      expect(fs.readFileSync(path.join(root, "etc/btw-hello.conf"), "utf8")).toBe("# Ansible managed\ngreeting = hello from group_vars\nport = 4242\nprofile = ansible-role\n");
      expect(fs.readlinkSync(path.join(root, "etc/systemd/system/multi-user.target.wants/btw-hello.service"))).toBe("/etc/systemd/system/btw-hello.service");
      expect(fs.existsSync(path.join(root, "var/lib/btw-hello-started"))).toBe(false);
      expect(fs.existsSync(path.join(root, "root/.ansible"))).toBe(false);
      expect(fs.readdirSync(path.join(root, "tmp"))).toEqual([]);
      expect(ansiblePaths(root)).toEqual(before.ansiblePaths);
      // The lent python3-apt's .pth file is gone with the rest of what the build brought in.
      expect(execFileSync("find", ["etc", "usr", "var", "-name", "*btw-host*"], { cwd: root, encoding: "utf8" })).toBe("");
    });
  }, 1_200_000);

  test("a failing task fails the build naming the profile, the play, the task and Ansible's message, and leaves no image", () => {
    const output = path.join(work, "ansible-failing.qcow2");
    const run = customize(PROFILES, "ansible-failing", base, output);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/TASK \[Write a file first\] \**\nchanged: \[image\]/);
    expect(run.stderr).toContain(
      "customize-image: error: profile ansible-failing: ansible/playbook.yml failed in play 'Break the build', task 'Install a package that does not exist': No package matching 'no-such-package-btw' is available",
    );
    expect(outputsNamed("ansible-failing")).toEqual([]);
  }, 600_000);

  test("a playbook naming a role it lacks fails before the image is changed", () => {
    const profilesDir = fs.mkdtempSync(path.join(work, "profiles-"));
    fs.mkdirSync(path.join(profilesDir, "no-role/ansible"), { recursive: true });
    fs.writeFileSync(path.join(profilesDir, "no-role/ansible/playbook.yml"), "- name: Use a role\n  hosts: all\n  roles: [nosuch]\n");
    const output = path.join(work, "no-role.qcow2");
    const run = customize(profilesDir, "no-role", base, output);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/customize-image: error: profile no-role: ansible\/playbook\.yml failed: ERROR! the role 'nosuch' was not found/);
    expect(run.stderr).not.toMatch(/apt-get update|using the host's apt/);
    expect(outputsNamed("no-role")).toEqual([]);
  }, 600_000);
});
