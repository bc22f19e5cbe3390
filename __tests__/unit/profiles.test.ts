// Profiles are folders of plain files; these tests read the shipped ones and
// check what changes when a profile changes. No network, no image.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { ConfigError, PROJECT_DIR } from "../../lib/config/config";
import { parseConfig } from "../helpers/test-config";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { scriptHash, scriptParts, SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { listProfiles, readProfile, validateProfileFolder } from "../../lib/config/profile";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const PROFILES = path.join(PROJECT_DIR, "profiles");

function copyProfiles(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-profiles-"));
  fs.cpSync(PROFILES, dir, { recursive: true });
  return dir;
}

function customizeStep(profilesDir: string, lab = testLab()): { acquire: unknown; customize: any; command: string } {
  const config = parseConfig(stringify(lab), "test.yaml", { profilesDir, cacheDir: "/var/cache/btw-test" });
  const tf = synthStack((app) => new LabStack(app, "lab", config));
  const steps = Object.entries(tf.resource.terraform_data) as [string, any][];
  const customize = steps.find(([name]) => name.startsWith("image-"))?.[1];
  return {
    acquire: steps.find(([name]) => name.startsWith("cloud-image_acquire"))?.[1].triggers_replace,
    customize: customize?.triggers_replace,
    command: customize?.provisioner[0]["local-exec"].command,
  };
}

const stepTriggers = (profilesDir: string) => customizeStep(profilesDir);

/** A copy of the shipped profiles with extra profile folders: { "name/path": "content" }. */
function profilesWith(files: Record<string, string>): string {
  const dir = copyProfiles();
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
  return dir;
}

function configProblems(lab: Record<string, unknown>, profilesDir: string): string {
  try {
    parseConfig(stringify(lab), "lab.yaml", { profilesDir });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error("the config was accepted");
}

describe("the shipped profiles", () => {
  test("minimal, btwd, graphical, metal and proxmox exist and are valid", () => {
    expect(listProfiles(PROFILES)).toEqual(expect.arrayContaining(["btwd", "graphical", "metal", "minimal", "proxmox"]));
    for (const name of listProfiles(PROFILES)) expect(() => validateProfileFolder(PROFILES, name)).not.toThrow();
  });

  test("minimal installs the guest agent that readiness relies on, and keeps cloud-init", () => {
    const minimal = readProfile(PROFILES, "minimal");
    expect(minimal.chain).toEqual(["minimal"]);
    expect(minimal.packages).toContain("qemu-guest-agent");
    expect(minimal.packages).not.toContain("cloud-init");
  });

  test("btwd is a Sway desktop on top of minimal with a login path that starts sway", () => {
    const btwd = readProfile(PROFILES, "btwd");
    expect(btwd.chain).toEqual(["minimal", "btwd"]);
    expect(btwd.packages).toEqual(expect.arrayContaining(["qemu-guest-agent", "sway", "foot", "greetd"]));
    const greetd = fs.readFileSync(path.join(PROFILES, "btwd/files/etc/greetd/config.toml"), "utf8");
    expect(greetd).toMatch(/sway/);
  });

  test("metal is minimal with Debian's generic kernel in place of the cloud kernel", () => {
    const metal = readProfile(PROFILES, "metal");
    expect(metal.chain).toEqual(["minimal", "metal"]);
    expect(metal.packages).toEqual(expect.arrayContaining(["qemu-guest-agent", "linux-image-amd64"]));
    const script = fs.readFileSync(path.join(PROFILES, "metal/commands.d/10-generic-kernel-only.sh"), "utf8");
    expect(script).toMatch(/apt-get purge/);
  });

  test("graphical is a light full desktop on top of minimal", () => {
    const graphical = readProfile(PROFILES, "graphical");
    expect(graphical.chain).toEqual(["minimal", "graphical"]);
    expect(graphical.packages).toEqual(expect.arrayContaining(["xfce4", "lightdm"]));
  });

  test("proxmox is Proxmox VE 9 on trixie and 8 on bookworm, each from its release's no-subscription repository, as Proxmox documents", () => {
    const proxmox = readProfile(PROFILES, "proxmox");
    expect(proxmox.chain).toEqual(["minimal", "proxmox"]);
    expect(proxmox.releases).toEqual(["bookworm", "trixie"]);
    expect(proxmox.packages).toEqual(expect.arrayContaining(["proxmox-default-kernel", "proxmox-ve", "postfix", "open-iscsi", "chrony"]));
    expect(proxmox.packages.indexOf("proxmox-default-kernel")).toBeLessThan(proxmox.packages.indexOf("proxmox-ve"));
    const sources = (release: string) => fs.readFileSync(path.join(PROFILES, `proxmox/apt-sources.d/${release}/pve-install-repo.sources`), "utf8");
    for (const release of ["trixie", "bookworm"]) {
      expect(sources(release)).toMatch(/^URIs: http:\/\/download\.proxmox\.com\/debian\/pve$/m);
      expect(sources(release)).toMatch(new RegExp(`^Suites: ${release}$`, "m"));
      expect(sources(release)).toMatch(/^Components: pve-no-subscription$/m);
    }
    expect(sources("trixie")).toMatch(/^Signed-By: \/usr\/share\/keyrings\/proxmox-archive-keyring\.gpg$/m);
    expect(sources("bookworm")).toMatch(/^Signed-By: \/etc\/apt\/keyrings\/proxmox-release-bookworm\.gpg$/m);
    const kernel = fs.readFileSync(path.join(PROFILES, "proxmox/commands.d/20-no-debian-kernel.sh"), "utf8");
    expect(kernel).toMatch(/installed linux-image-amd64 linux-image-cloud-amd64 'linux-image-6\.\*'/);
    expect(kernel).toMatch(/os-prober/);
  });

  test("each release's build hashes only that release's repositories", () => {
    const profilesDir = copyProfiles();
    const trixie = readProfile(profilesDir, "proxmox", "trixie");
    const bookworm = readProfile(profilesDir, "proxmox", "bookworm");
    expect(Object.keys(trixie.fileHashes)).toContain("proxmox/apt-sources.d/trixie/pve-install-repo.sources");
    expect(Object.keys(trixie.fileHashes).filter((file) => file.includes("bookworm"))).toEqual([]);
    fs.appendFileSync(path.join(profilesDir, "proxmox/apt-sources.d/bookworm/pve-install-repo.sources"), "# edited\n");
    expect(readProfile(profilesDir, "proxmox", "trixie").contentHash).toBe(trixie.contentHash);
    expect(readProfile(profilesDir, "proxmox", "bookworm").contentHash).not.toBe(bookworm.contentHash);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("proxmox-btwd is proxmox and btwd: both parents' chains, minimal once, and both parents' packages", () => {
    const both = readProfile(PROFILES, "proxmox-btwd", "trixie");
    expect(both.chain).toEqual(["minimal", "proxmox", "btwd", "proxmox-btwd"]);
    expect(both.layers).toEqual(both.chain.map((name) => path.join(PROFILES, name)));
    expect(both.packages).toEqual([...readProfile(PROFILES, "proxmox").packages, ...readProfile(PROFILES, "btwd").packages.filter((p) => !readProfile(PROFILES, "minimal").packages.includes(p))]);
    expect(both.releases).toEqual(["bookworm", "trixie"]);
  });

  test("proxmox, and every profile extending it, is refused with firmware uefi-secure, naming why", () => {
    const lab = (firmware: string) => ({ ...testLab({ vms: [{ name: "pve", profile: "proxmox-btwd" }] }), libvirt: { uri: "qemu:///system", accel: "tcg", firmware } });
    const problems = configProblems(lab("uefi-secure"), PROFILES);
    expect(problems).toContain("vms[0].profile: profile proxmox (which proxmox-btwd extends) cannot boot with Secure Boot enforced: Proxmox's kernel is signed with Proxmox's key");
    expect(problems).toContain("and libvirt.firmware is uefi-secure (use uefi or bios)");
    expect(() => parseConfig(stringify(lab("uefi")), "lab.yaml", { profilesDir: PROFILES })).not.toThrow();
  });
});

describe("a profile with more than one parent", () => {
  // a -> (b, c), b -> minimal, c -> (minimal, d): each parent's chain first, in the order extends names them.
  const family = {
    "a/extends": "b c\n",
    "b/extends": "minimal\n",
    "b/install.d/b.list": "bpkg\n",
    "c/extends": "# one a line works too\nminimal\nd\n",
    "c/install.d/c.list": "cpkg\n",
    "d/install.d/d.list": "dpkg-d\n",
    "a/install.d/a.list": "apkg\n",
  };

  test("parents are applied in order, each parent's own chain first and before its child, a profile reached twice once at its first place", () => {
    const profilesDir = profilesWith(family);
    const a = readProfile(profilesDir, "a");
    expect(a.chain).toEqual(["minimal", "b", "d", "c", "a"]);
    const minimalPackages = readProfile(profilesDir, "minimal").packages;
    expect(a.packages).toEqual([...minimalPackages, "bpkg", "dpkg-d", "cpkg", "apkg"]);
    expect(readProfile(profilesDir, "c").chain).toEqual(["minimal", "d", "c"]);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("the order of the parents names the build: swapping them changes the image's hash and the order the script gets", () => {
    const profilesDir = profilesWith(family);
    const before = readProfile(profilesDir, "a");
    fs.writeFileSync(path.join(profilesDir, "a/extends"), "c b\n");
    const after = readProfile(profilesDir, "a");
    expect(after.chain).toEqual(["minimal", "d", "c", "b", "a"]);
    expect(after.contentHash).not.toBe(before.contentHash);
    const layers = (info: typeof after) => customizeArgs(info, "trixie", "/b.qcow2", "/o.qcow2", { secureBoot: false }).filter((_, i, args) => args[i - 1] === "--layer");
    expect(layers(after).map((dir) => path.basename(dir))).toEqual(after.chain);
    // The same files in another order hash differently, even with the extends file's own hash left out.
    const withoutExtends = (info: typeof after) => Object.fromEntries(Object.entries(info.fileHashes).filter(([file]) => !file.endsWith("/extends")));
    expect(withoutExtends(after)).toEqual(withoutExtends(before));
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("cycles through any parent are refused naming the chain, and a parent named twice or an empty extends is refused", () => {
    const profilesDir = profilesWith({
      ...family,
      "d/extends": "a\n",
      "twice/extends": "minimal metal minimal\n",
      "blank/extends": "# nothing\n",
      "self/extends": "minimal self\n",
    });
    expect(() => readProfile(profilesDir, "a")).toThrow("profile a: 'extends' forms a cycle (a -> c -> d -> a)");
    expect(() => readProfile(profilesDir, "c")).toThrow("profile c: 'extends' forms a cycle (c -> d -> a -> c)");
    expect(() => readProfile(profilesDir, "self")).toThrow("profile self: 'extends' forms a cycle (self -> self)");
    expect(() => readProfile(profilesDir, "twice")).toThrow("profile twice: extends names minimal twice");
    expect(() => readProfile(profilesDir, "blank")).toThrow("profile blank: extends names no profile");
    expect(configProblems(testLab({ vms: [{ name: "vm1", profile: "a" }] }), profilesDir)).toContain("vms[0].profile: profile a: 'extends' forms a cycle (a -> c -> d -> a)");
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("the release must be in every releases file of every parent's chain", () => {
    const profilesDir = profilesWith({ ...family, "b/releases": "bookworm trixie\n", "d/releases": "bookworm\n" });
    expect(readProfile(profilesDir, "a", "bookworm").releases).toEqual(["bookworm"]);
    expect(() => readProfile(profilesDir, "a", "trixie")).toThrow("profile d supports releases: bookworm but the lab's release is trixie (profile a extends it)");
    expect(readProfile(profilesDir, "b", "trixie").releases).toEqual(["bookworm", "trixie"]);
    fs.writeFileSync(path.join(profilesDir, "c/releases"), "trixie\n");
    // bookworm (b, d) and trixie (c): no release satisfies the whole chain.
    expect(readProfile(profilesDir, "a").releases).toEqual([]);
    expect(() => readProfile(profilesDir, "a", "bookworm")).toThrow("profile c supports releases: trixie but the lab's release is bookworm (profile a extends it)");
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });
});

describe("profile changes and the image steps", () => {
  test("changing one package line re-runs customization but not the download", () => {
    const profilesDir = copyProfiles();
    const before = stepTriggers(profilesDir);
    fs.appendFileSync(path.join(profilesDir, "minimal/install.d/base.list"), "htop\n");
    const after = stepTriggers(profilesDir);
    expect(after.acquire).toEqual(before.acquire);
    expect(after.customize.profile_files["minimal/install.d/base.list"]).not.toBe(before.customize.profile_files["minimal/install.d/base.list"]);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("editing a profile's README rebuilds nothing", () => {
    const profilesDir = copyProfiles();
    const before = stepTriggers(profilesDir);
    fs.appendFileSync(path.join(profilesDir, "minimal/README.md"), "\nMore words.\n");
    const after = stepTriggers(profilesDir);
    expect(after.customize).toEqual(before.customize);
    expect(readProfile(profilesDir, "minimal").contentHash).toBe(readProfile(PROFILES, "minimal").contentHash);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("a file the profile format does not know is refused, naming it", () => {
    const profilesDir = copyProfiles();
    fs.writeFileSync(path.join(profilesDir, "minimal/packages.txt"), "htop\n");
    expect(() => readProfile(profilesDir, "minimal")).toThrow(/profile minimal: unexpected file packages\.txt/);
    fs.mkdirSync(path.join(profilesDir, "loop"));
    fs.writeFileSync(path.join(profilesDir, "loop/extends"), "loop\n");
    expect(() => readProfile(profilesDir, "loop")).toThrow(/cycle/);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("a new profile needs no code change: a folder is enough", () => {
    const profilesDir = copyProfiles();
    fs.mkdirSync(path.join(profilesDir, "webserver/install.d"), { recursive: true });
    fs.writeFileSync(path.join(profilesDir, "webserver/extends"), "minimal\n");
    fs.writeFileSync(path.join(profilesDir, "webserver/install.d/web.list"), "# the web server\nnginx-light\n");
    const config = parseConfig(stringify(testLab({ vms: [{ name: "web", profile: "webserver" }] })), "t.yaml", { profilesDir });
    expect(config.vms[0].profile).toBe("webserver");
    expect(readProfile(profilesDir, "webserver").packages).toEqual(["qemu-guest-agent", "ca-certificates", "curl", "less", "vim-tiny", "nginx-light"]);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });
});

describe("a profile's Ansible playbook (ansible/)", () => {
  const FIXTURES = path.join(PROJECT_DIR, "__tests__", "fixtures", "profiles");
  /** The shipped profiles plus the e2e test's ansible-role profile, extending minimal. */
  function profilesWithAnsibleRole(): string {
    const dir = profilesWith({ "webserver/extends": "minimal\n" });
    fs.cpSync(path.join(FIXTURES, "ansible-role/ansible"), path.join(dir, "webserver/ansible"), { recursive: true });
    return dir;
  }

  test("an ansible/ folder with playbook.yml, roles and group_vars is accepted and part of the profile", () => {
    const profilesDir = profilesWithAnsibleRole();
    expect(() => validateProfileFolder(profilesDir, "webserver")).not.toThrow();
    expect(Object.keys(readProfile(profilesDir, "webserver").fileHashes)).toEqual(
      expect.arrayContaining(["webserver/ansible/playbook.yml", "webserver/ansible/group_vars/all.yml", "webserver/ansible/roles/hello/tasks/main.yml"]),
    );
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("an ansible/ folder without playbook.yml is refused, saying what it needs", () => {
    const profilesDir = profilesWith({ "webserver/extends": "minimal\n", "webserver/ansible/roles/web/tasks/main.yml": "- ansible.builtin.debug: {}\n", "empty/ansible/site.yml": "" });
    expect(() => readProfile(profilesDir, "webserver")).toThrow("profile webserver: ansible/ has no playbook.yml (the build runs ansible/playbook.yml; its roles and vars go beside it)");
    expect(configProblems(testLab({ vms: [{ name: "web", profile: "empty" }] }), profilesDir)).toContain("vms[0].profile: profile empty: ansible/ has no playbook.yml");
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("editing a role file or its vars changes the profile's content hash and re-runs customization", () => {
    const profilesDir = profilesWithAnsibleRole();
    const lab = testLab({ vms: [{ name: "web", profile: "webserver" }] });
    const before = { hash: readProfile(profilesDir, "webserver").contentHash, step: customizeStep(profilesDir, lab).customize };
    fs.appendFileSync(path.join(profilesDir, "webserver/ansible/roles/hello/templates/hello.conf.j2"), "owner = {{ btw_release }}\n");
    const afterTemplate = { hash: readProfile(profilesDir, "webserver").contentHash, step: customizeStep(profilesDir, lab).customize };
    expect(afterTemplate.hash).not.toBe(before.hash);
    expect(afterTemplate.step).not.toEqual(before.step);
    fs.writeFileSync(path.join(profilesDir, "webserver/ansible/roles/hello/defaults/main.yml"), "hello_port: 4343\n");
    expect(readProfile(profilesDir, "webserver").contentHash).not.toBe(afterTemplate.hash);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });
});

describe("a profile is resolved once, at synth, and the script gets the result", () => {
  test("the customize step passes the chain's folders parent first, each package with its origin, and the lab's release", () => {
    const { command } = customizeStep(PROFILES, testLab({ vms: [{ name: "bare", profile: "metal" }] }));
    expect(command).toContain(`--release trixie --layer ${PROFILES}/minimal --layer ${PROFILES}/metal --package `);
    expect(command).toContain("--package 'qemu-guest-agent profile minimal: install.d/base.list:");
    expect(command).toContain("--package 'linux-image-amd64 profile metal: install.d/kernel.list:");
    expect(command).not.toMatch(/--profiles?(-dir)? /);
    const metal = readProfile(PROFILES, "metal", "trixie");
    expect(metal.layers).toEqual([path.join(PROFILES, "minimal"), path.join(PROFILES, "metal")]);
    expect(customizeArgs(metal, "trixie", "/b.qcow2", "/o.qcow2", { secureBoot: false }).filter((arg, i, args) => args[i - 1] === "--package")).toEqual(
      metal.packageLines.map((pkg) => `${pkg.name} ${pkg.origin}`),
    );
  });

  test("a profile for another release is refused at synth, naming the key, the profile and the release", () => {
    const profilesDir = profilesWith({ "old/releases": "bookworm\n", "old-extra/extends": "old\n", "both/releases": "# any stable\nbookworm trixie\n" });
    expect(() => readProfile(profilesDir, "old", "trixie")).toThrow("profile old supports releases: bookworm but the lab's release is trixie");
    expect(readProfile(profilesDir, "old", "bookworm").releases).toEqual(["bookworm"]);
    expect(configProblems(testLab({ vms: [{ name: "vm1", profile: "old" }] }), profilesDir)).toContain("vms[0].profile: profile old supports releases: bookworm but the lab's release is trixie");
    // A parent's releases hold for every profile that extends it; one line may name several.
    expect(() => readProfile(profilesDir, "old-extra", "trixie")).toThrow("profile old supports releases: bookworm but the lab's release is trixie (profile old-extra extends it)");
    expect(readProfile(profilesDir, "both", "trixie").releases).toEqual(["bookworm", "trixie"]);
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("an unknown profile, a bad extends and a bad package line are refused, naming the file and line", () => {
    const profilesDir = profilesWith({
      "orphan/extends": "nosuch\n",
      "spaced/install.d/tools.list": "curl\n\nvim tiny\n",
      "odd/install.d/tools.list": "# tools\n-curl\n",
      "linked/README.md": "",
    });
    fs.symlinkSync(path.join(PROFILES, "minimal/install.d"), path.join(profilesDir, "linked/install.d"));
    expect(() => readProfile(profilesDir, "nosuch")).toThrow(/^unknown profile 'nosuch' \(profiles in .*: btwd, .*, minimal, odd, orphan, proxmox, proxmox-btwd, slim, spaced, zfs\)$/);
    expect(() => readProfile(profilesDir, "orphan")).toThrow(/^profile orphan: extends unknown profile 'nosuch' \(profiles in /);
    expect(() => readProfile(profilesDir, "spaced")).toThrow("profile spaced: install.d/tools.list:3: one package per line: 'vim tiny'");
    expect(() => readProfile(profilesDir, "odd")).toThrow("profile odd: install.d/tools.list:2: not a package name: '-curl'");
    expect(() => readProfile(profilesDir, "linked")).toThrow("profile linked: unexpected file install.d");
    expect(configProblems(testLab({ vms: [{ name: "vm1", profile: "orphan" }] }), profilesDir)).toContain("vms[0].profile: profile orphan: extends unknown profile 'nosuch'");
    fs.rmSync(profilesDir, { recursive: true, force: true });
  });

  test("the step's script hash covers every part customize-image.sh sources, so an edit to any re-runs it", () => {
    const parts = scriptParts("customize-image.sh");
    const inFolder = fs.readdirSync(path.join(SCRIPTS_DIR, "customize")).map((file) => `customize/${file}`);
    expect(parts).toEqual(expect.arrayContaining(["customize-image.sh", "lib/image-mount.sh", "lib/private-dev.sh", ...inFolder]));
    expect(inFolder.length).toBeGreaterThan(3);
    // Even the shared messages a step sources are part of its hash.
    expect(scriptParts("wait-for-cloud-init.sh")).toEqual(["wait-for-cloud-init.sh", "lib/messages.sh", "lib/console-line.sh"]);
    // And a program a step runs that is not sh: the seed's schema check, run with the image's python.
    expect(scriptParts("make-seed-iso.sh")).toEqual(expect.arrayContaining(["lib/image-view.sh", "lib/schema-check.py"]));
    expect(scriptHash("customize-image.sh")).toMatch(/^[0-9a-f]{64}$/);
  });

  test("no profile resolution is left in the scripts", () => {
    const scripts = fs.readdirSync(SCRIPTS_DIR, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".sh"));
    for (const script of scripts) {
      const text = fs.readFileSync(path.join(SCRIPTS_DIR, script), "utf8");
      expect({ script, found: text.match(/\bextends\b|releases|profiles[_-]dir|unknown profile|install\.d\/\*/g) ?? [] }).toEqual({ script, found: [] });
    }
  });
});
