import * as path from "path";
import { stringify } from "yaml";
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, parseConfig } from "../../lib/config";
import { testLab } from "../helpers/lab-yaml";

function problemsOf(text: string): string {
  try {
    parseConfig(text, "/labs/bad.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error("the config was accepted");
}

describe("a lab config is validated before any stack is built", () => {
  test("the embedded default lab.yaml is valid: trixie, minimal, one VM, KVM, UEFI, NAT", () => {
    const lab = loadConfig(DEFAULT_CONFIG_PATH);
    expect(lab.release).toBe("trixie");
    expect(lab.image.url).toBe("https://cloud.debian.org/images/cloud/trixie/latest/debian-13-generic-amd64.tar.xz");
    expect(lab.profile).toBe("minimal");
    expect(lab.vms).toHaveLength(1);
    expect(lab.libvirt).toMatchObject({ uri: "qemu:///system", accel: "kvm", firmware: "uefi" });
    expect(lab.network.mode).toBe("nat");
  });

  test("a bookworm lab is accepted and VM defaults are applied", () => {
    const lab = parseConfig(stringify(testLab({ release: "bookworm", vms: [{ name: "a" }, { name: "b", memory: 2048, profile: "minimal" }] })), "x.yaml");
    expect(lab.release).toBe("bookworm");
    expect(lab.vms.map((vm) => [vm.name, vm.memory, vm.profile])).toEqual([
      ["a", 1024, "minimal"],
      ["b", 2048, "minimal"],
    ]);
  });

  test("invalid YAML names the file, line and column", () => {
    const message = problemsOf("release: trixie\nimage: {url: [\n  vms: 1\n");
    expect(message).toContain("/labs/bad.yaml");
    expect(message).toMatch(/line \d+, column \d+: YAML error/);
  });

  test("an unknown key names its path", () => {
    const message = problemsOf(stringify(testLab({ extra: { libvirt: { uri: "qemu:///system", acel: "tcg" } } })));
    expect(message).toContain("libvirt: unknown key 'acel'");
  });

  test("a wrong type names the key path and both types", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "vm1", memory: "lots" }] })));
    expect(message).toContain("vms[0].memory: expected number, got string");
  });

  test("duplicate VM names are refused", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "web" }, { name: "db" }, { name: "web" }] })));
    expect(message).toContain("vms[2].name: duplicate VM name 'web' (also vms[0].name)");
  });

  test("a VM name that is not a valid hostname is refused", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "Web_Server!" }] })));
    expect(message).toContain("vms[0].name: must be a valid hostname");
  });

  test("an unknown accel lists the accepted values", () => {
    const message = problemsOf(stringify(testLab({ extra: { libvirt: { accel: "hvf" } } })));
    expect(message).toContain("libvirt.accel: 'hvf' is not one of 'kvm', 'tcg'");
  });

  test("an unknown profile names the profiles that exist", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "vm1", profile: "nosuch" }] })));
    expect(message).toMatch(/vms\[0\]\.profile: unknown profile 'nosuch' \(profiles in .*: .*minimal/);
  });

  test("a missing required key says it is required", () => {
    const lab = testLab();
    delete lab.release;
    expect(problemsOf(stringify(lab))).toContain("release: is required");
  });

  test("a missing file says how to choose another", () => {
    expect(() => loadConfig(path.join("/nonexistent", "lab.yaml"))).toThrow(/cannot read the file.*BTW_CONFIG/);
  });
});
