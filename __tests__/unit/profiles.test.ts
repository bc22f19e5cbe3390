// Profiles are folders of plain files; these tests read the shipped ones and
// check what changes when a profile changes. No network, no image.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig, PROJECT_DIR } from "../../lib/config";
import { listProfiles, readProfile, validateProfileFolder } from "../../lib/profile";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const PROFILES = path.join(PROJECT_DIR, "profiles");

function copyProfiles(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-profiles-"));
  fs.cpSync(PROFILES, dir, { recursive: true });
  return dir;
}

function stepTriggers(profilesDir: string): { acquire: unknown; customize: any } {
  const config = parseConfig(stringify(testLab()), "test.yaml", { profilesDir, cacheDir: "/var/cache/btw-test" });
  const tf = synthStack((app) => new LabStack(app, "lab", config));
  const steps = Object.entries(tf.resource.terraform_data) as [string, any][];
  return {
    acquire: steps.find(([name]) => name.startsWith("cloud-image_acquire"))?.[1].triggers_replace,
    customize: steps.find(([name]) => name.startsWith("image-minimal_customize"))?.[1].triggers_replace,
  };
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

  test("proxmox is defined for Debian 12 with Proxmox's no-subscription repository", () => {
    const proxmox = readProfile(PROFILES, "proxmox");
    expect(proxmox.chain).toEqual(["minimal", "proxmox"]);
    expect(proxmox.releases).toEqual(["bookworm"]);
    expect(proxmox.packages).toEqual(expect.arrayContaining(["proxmox-ve", "postfix", "open-iscsi"]));
    const sources = fs.readFileSync(path.join(PROFILES, "proxmox/apt-sources.d/pve.sources"), "utf8");
    expect(sources).toMatch(/^URIs: http:\/\/download\.proxmox\.com\/debian\/pve$/m);
    expect(sources).toMatch(/^Suites: bookworm$/m);
    expect(sources).toMatch(/^Components: pve-no-subscription$/m);
    expect(sources).toMatch(/^Signed-By: \/etc\/apt\/keyrings\/proxmox-release-bookworm\.gpg$/m);
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
