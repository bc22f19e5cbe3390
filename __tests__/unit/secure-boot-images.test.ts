// A lab whose firmware enforces Secure Boot (uefi-secure) has its images built
// with the check that fails on anything unsigned (customize-image.sh
// --secure-boot), under a name of their own: an image cached by a build without
// the check must not serve it.
import * as path from "path";
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { customizeArgs, customizedImageKey } from "../../lib/constructs/customized-image";
import { BaremetalStack } from "../../stacks/baremetal-stack";
import { ImagesStack } from "../../stacks/images-stack";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const minimal = readProfile(path.join(PROJECT_DIR, "profiles"), "minimal", "trixie");

function config(firmware: string) {
  const lab = testLab();
  return parseConfig(stringify({ ...lab, libvirt: { ...(lab.libvirt as object), firmware } }), "test.yaml", { cacheDir: "/var/cache/btw-test" });
}

/** The customize step of the lab's one profile, as each stack synthesizes it. */
function customizeSteps(firmware: string): any[] {
  const lab = config(firmware);
  return [LabStack, BaremetalStack, ImagesStack].map((Stack) => {
    const steps = Object.values(synthStack((app) => new Stack(app, "stack", lab)).resource.terraform_data) as any[];
    const customize = steps.filter((step) => step.provisioner[0]["local-exec"].command.includes("customize-image.sh"));
    expect(customize).toHaveLength(1);
    return customize[0];
  });
}

const command = (step: any): string => step.provisioner[0]["local-exec"].command;
const imagePath = (step: any): string => /--output ([^\s;]+)/.exec(command(step))![1];

describe("images for a lab with Secure Boot enforced", () => {
  test("the image key differs with and without the requirement, and is stable", () => {
    const required = customizedImageKey("base", minimal, { secureBoot: true });
    expect(required).not.toBe(customizedImageKey("base", minimal, { secureBoot: false }));
    expect(customizedImageKey("base", minimal, { secureBoot: true })).toBe(required);
  });

  test("the script gets --secure-boot only when it is required", () => {
    expect(customizeArgs(minimal, "trixie", "/b.qcow2", "/o.qcow2", { secureBoot: true })).toContain("--secure-boot");
    expect(customizeArgs(minimal, "trixie", "/b.qcow2", "/o.qcow2", { secureBoot: false })).not.toContain("--secure-boot");
  });

  test("with firmware uefi-secure, the lab, bare-metal and images stacks customize with --secure-boot into one image of another name than uefi's", () => {
    const secure = customizeSteps("uefi-secure");
    for (const step of secure) {
      expect(command(step)).toMatch(/ --secure-boot /);
      expect(step.triggers_replace.secure_boot).toBe(true);
      expect(step.provisioner).toEqual(secure[0].provisioner);
    }
    const uefi = customizeSteps("uefi");
    for (const step of [...uefi, ...customizeSteps("bios")]) {
      expect(command(step)).not.toContain("--secure-boot");
      expect(step.triggers_replace.secure_boot).toBe(false);
      expect(imagePath(step)).toBe(imagePath(uefi[0]));
    }
    expect(imagePath(secure[0])).toMatch(/^\/var\/cache\/btw-test\/images\/minimal-[0-9a-f]{16}\.qcow2$/);
    expect(imagePath(secure[0])).not.toBe(imagePath(uefi[0]));
  });
});
