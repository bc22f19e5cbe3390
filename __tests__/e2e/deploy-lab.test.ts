// The main job, end to end: `cdktf deploy lab` boots verified VMs from the
// stand-in cloud image on an isolated network; `cdktf destroy lab` leaves nothing.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { LabWorkspace } from "../helpers/cdktf-cli";
import { planChanges } from "../helpers/engine";
import { fixtureImage } from "../helpers/fixture-image";
import { FileServer, serveDirectory } from "../helpers/http-server";
import { testLab } from "../helpers/lab-yaml";
import { forceCleanup, guestExec, hostLeftovers, leftovers, virsh, volumeNames } from "../helpers/libvirt";

const LAB = "btwe2e";
const PREFIX = `btw-${LAB}`;

describe("deploy a two-VM lab, change it, destroy it", () => {
  let server: FileServer;
  const workspace = new LabWorkspace();
  let lab: Record<string, unknown>;

  beforeAll(async () => {
    forceCleanup(PREFIX);
    forceCleanup(`${LAB}-net`);
    const fixture = fixtureImage("trixie");
    server = await serveDirectory(fixture.dir);
    lab = testLab({
      name: LAB,
      imageBaseUrl: server.baseUrl,
      vms: [{ name: "alpha" }, { name: "beta", memory: 1024 }],
      extra: {
        libvirt: { accel: "tcg", firmware: "uefi" },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.21.0/24" },
        readiness: { timeout: 900 },
      },
    });
    fs.writeFileSync(workspace.configFile, stringify(lab));
  }, 1_500_000);

  afterAll(async () => {
    workspace.destroy();
    forceCleanup(PREFIX);
    forceCleanup(`${LAB}-net`);
    await server?.close();
  }, 900_000);

  test("deploy waits until cloud-init is done in both VMs and outputs their addresses", () => {
    const run = workspace.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    const outputs = workspace.outputs();
    for (const name of ["alpha", "beta"]) {
      const vm = outputs[`vm-${name}`].vm;
      expect(vm).toMatchObject({ name, domain: `${PREFIX}-${name}`, ready: true });
      expect(vm.address[0]).toMatch(/^10\.213\.21\.\d+$/);
      expect(fs.existsSync(vm.console_log)).toBe(true);
    }
  }, 2_400_000);

  test("a second deploy with no change does nothing: the plan is all no-op", () => {
    expect(workspace.cdktf(["synth"]).status).toBe(0);
    const changes = planChanges(path.join(workspace.outdir, "stacks", "lab"));
    expect(changes.length).toBeGreaterThan(10);
    expect(changes.filter((c) => c.actions.join() !== "no-op")).toEqual([]);
  }, 600_000);

  test("inside each guest (through the agent) cloud-init is done and the hostname is the VM name", () => {
    for (const name of ["alpha", "beta"]) {
      const status = guestExec(`${PREFIX}-${name}`, "/usr/bin/cloud-init", ["status"]);
      expect(status.stdout).toContain("status: done");
      expect(guestExec(`${PREFIX}-${name}`, "/bin/hostname", []).stdout.trim()).toBe(name);
    }
  }, 300_000);

  test("ten VMs would cost overlays, not images: each VM disk is a qcow2 backed by the shared base volume", () => {
    const volumes = volumeNames(PREFIX);
    expect(volumes.filter((v) => v.includes("-base-"))).toHaveLength(1);
    for (const name of ["alpha", "beta"]) {
      const xml = virsh(["vol-dumpxml", `${PREFIX}-${name}.qcow2`, "--pool", PREFIX]);
      expect(xml).toMatch(/<backingStore>[\s\S]*-base-/);
    }
  });

  test("changing one VM's memory: `cdktf diff` shows only that VM's domain, and redeploy changes only it", () => {
    const changed = { ...lab, vms: [{ name: "alpha" }, { name: "beta", memory: 1280 }] };
    fs.writeFileSync(workspace.configFile, stringify(changed));
    const diff = workspace.cdktf(["diff", "lab", "--skip-provider-lock"]);
    expect(diff.status).toBe(0);
    expect(diff.output).toMatch(/libvirt_domain\.vm-beta_domain_\w+ (\(vm-beta\/domain\) )?must be replaced/);
    expect(diff.output).toMatch(/memory\s+= 1024 -> 1280/);
    expect(diff.output).not.toMatch(/vm-alpha_\S+ (\(\S+\) )?(must be replaced|will be)/);
    expect(workspace.cdktf(["synth"]).status).toBe(0);
    const changes = planChanges(path.join(workspace.outdir, "stacks", "lab")).filter((c) => c.actions.join() !== "no-op");
    expect(changes.map((c) => c.address)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^libvirt_domain\.vm-beta_domain/), expect.stringMatching(/^terraform_data\.vm-beta_cloud-init-ready/)]),
    );
    expect(changes.filter((c) => !c.address.includes("vm-beta"))).toEqual([]);
    const run = workspace.deploy();
    expect(run.status).toBe(0);
    expect(virsh(["dominfo", `${PREFIX}-beta`])).toMatch(/Max memory:\s+1310720 KiB/);
  }, 2_400_000);

  test("destroy removes every domain, NVRAM file, volume, seed, network and pool of the lab", () => {
    const run = workspace.destroy();
    expect(run.status).toBe(0);
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(fs.readdirSync("/var/lib/libvirt/qemu/nvram").filter((f) => f.startsWith(PREFIX))).toEqual([]);
    expect(fs.existsSync(`/var/lib/libvirt/btw-img/${LAB}`)).toBe(false);
    expect(fs.readdirSync("/var/log/libvirt/qemu").filter((f) => f.startsWith(PREFIX))).toEqual([]);
    expect(hostLeftovers(workspace.dir, path.join(process.env.BTW_CACHE_DIR as string, "labs", LAB))).toEqual([]);
  }, 900_000);
});
