import * as fs from "fs";
import * as path from "path";
import { planChanges, synthLabToDir } from "../helpers/engine";
import { testLab } from "../helpers/lab-yaml";

describe("the real engine plans the lab against the real libvirtd", () => {
  test("init installs dmacvicar/libvirt from the local mirror and plan lists the whole lab", () => {
    const { stackDir, outdir } = synthLabToDir(testLab({ name: "btwplan", vms: [{ name: "vm1" }, { name: "vm2" }] }));
    try {
      const changes = planChanges(stackDir);
      const lock = fs.readFileSync(path.join(stackDir, ".terraform.lock.hcl"), "utf8");
      expect(lock).toMatch(/provider "registry\.(terraform\.io|opentofu\.org)\/dmacvicar\/libvirt"/);
      expect(lock).toContain('version     = "0.8.3"');
      const count = (type: string) => changes.filter((c) => c.type === type).length;
      expect(changes.every((c) => c.actions.join() === "create")).toBe(true);
      expect(count("libvirt_network")).toBe(1);
      expect(count("libvirt_pool")).toBe(1);
      expect(count("libvirt_domain")).toBe(2);
      // one base volume, and a seed and an overlay per VM
      expect(count("libvirt_volume")).toBe(5);
      // host check, acquire, customize, partition capture, and per VM a seed and a readiness step
      expect(count("terraform_data")).toBe(8);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  }, 300_000);
});
