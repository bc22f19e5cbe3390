// A profile build is a chain of cached layers (scripts/steps/customize/layers.sh): the
// stack names them in the customize step's triggers, and the plan summary names the
// first one that runs again.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { customizationLayers } from "../../lib/constructs/customized-image";
import { imageStepRun, ResourceChange } from "../../lib/plan/plan-summary";

const PROFILES = path.join(PROJECT_DIR, "profiles");

describe("a profile build is a chain of cached layers", () => {
  test("the layers are the packages, then files/, playbooks and each commands.d script of the chain, parent first", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ly-unit-"));
    try {
      fs.cpSync(path.join(PROFILES, "minimal"), path.join(dir, "minimal"), { recursive: true });
      fs.mkdirSync(path.join(dir, "web/files/etc"), { recursive: true });
      fs.mkdirSync(path.join(dir, "web/commands.d"), { recursive: true });
      fs.mkdirSync(path.join(dir, "web/ansible"), { recursive: true });
      fs.writeFileSync(path.join(dir, "web/extends"), "minimal\n");
      fs.writeFileSync(path.join(dir, "web/files/etc/web.conf"), "x\n");
      fs.writeFileSync(path.join(dir, "web/ansible/playbook.yml"), "- hosts: all\n  tasks: []\n");
      fs.writeFileSync(path.join(dir, "web/commands.d/20-b.sh"), "true\n");
      fs.writeFileSync(path.join(dir, "web/commands.d/10-a.sh"), "true\n");
      expect(customizationLayers(readProfile(dir, "web"), "trixie")).toEqual([
        "packages",
        "web/files",
        "web/ansible",
        "minimal/commands.d/10-qemu-guest-agent.sh",
        "minimal/commands.d/20-esp-on-first-use.sh",
        "web/commands.d/10-a.sh",
        "web/commands.d/20-b.sh",
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("several parents: the chain's order, and a repository of the lab's release only rebuilds from the packages", () => {
    const trixie = readProfile(PROFILES, "proxmox-btwd", "trixie");
    expect(customizationLayers(trixie, "trixie")).toEqual([
      "packages",
      "btwd/files",
      "minimal/commands.d/10-qemu-guest-agent.sh",
      "minimal/commands.d/20-esp-on-first-use.sh",
      "proxmox/commands.d/10-no-enterprise-repo.sh",
      "proxmox/commands.d/20-no-debian-kernel.sh",
      "btwd/commands.d/10-graphical-login.sh",
    ]);
    const layers = customizationLayers(trixie, "trixie");
    const source = "proxmox/apt-sources.d/trixie/pve-install-repo.sources";
    expect(Object.keys(trixie.fileHashes).filter((file) => file.includes("/apt-sources.d/"))).toEqual([source]);
    const edited = customize({ profile: "proxmox-btwd", profile_files: trixie.fileHashes, layers }, { profile: "proxmox-btwd", profile_files: { ...trixie.fileHashes, [source]: "0" }, layers });
    expect(imageStepRun(edited)?.reasons[1]).toBe("rebuilds every layer, from `packages`");
  });

  const customize = (before: Record<string, unknown>, after: Record<string, unknown>): ResourceChange => ({
    address: "terraform_data.image-web_customize_0123ABCD",
    type: "terraform_data",
    name: "image-web_customize_0123ABCD",
    change: { actions: ["delete", "create"], before: { id: "x", triggers_replace: before }, after: { triggers_replace: after } },
  });
  const layers = ["packages", "web/files", "minimal/commands.d/10-qemu-guest-agent.sh", "web/commands.d/10-a.sh"];
  const files = { "minimal/install.d/base.list": "1", "web/files/etc/web.conf": "2", "minimal/commands.d/10-qemu-guest-agent.sh": "3", "web/commands.d/10-a.sh": "4" };

  test("the plan summary names the first layer that runs again and the ones reused before it", () => {
    const lastScript = customize({ profile: "web", profile_files: files, layers }, { profile: "web", profile_files: { ...files, "web/commands.d/10-a.sh": "5" }, layers });
    expect(imageStepRun(lastScript)?.reasons).toEqual([
      "profile web changed: web/commands.d/10-a.sh (modified)",
      "rebuilds from layer `web/commands.d/10-a.sh` (4 of 4; cached: packages, web/files, minimal/commands.d/10-qemu-guest-agent.sh)",
    ]);
    const newScript = customize(
      { profile: "web", profile_files: files, layers },
      { profile: "web", profile_files: { ...files, "web/commands.d/05-z.sh": "6" }, layers: [...layers.slice(0, 3), "web/commands.d/05-z.sh", layers[3]] },
    );
    expect(imageStepRun(newScript)?.reasons[1]).toBe("rebuilds from layer `web/commands.d/05-z.sh` (4 of 5; cached: packages, web/files, minimal/commands.d/10-qemu-guest-agent.sh)");
    const packages = customize({ profile: "web", profile_files: files, layers }, { profile: "web", profile_files: { ...files, "minimal/install.d/base.list": "7" }, layers });
    expect(imageStepRun(packages)?.reasons[1]).toBe("rebuilds every layer, from `packages`");
    // A new script of the customization itself rebuilds everything: no layer line.
    const script = customize({ profile: "web", profile_files: files, layers, script_sha256: "a" }, { profile: "web", profile_files: files, layers, script_sha256: "b" });
    expect(imageStepRun(script)?.reasons).toEqual(["`scripts/steps/customize-image.sh` changed"]);
  });
});
