// The baremetal stack and the `baremetal` config section: what synthesizes
// and what the config refuses.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { ConfigError, PROJECT_DIR } from "../../lib/config/config";
import { layoutArgs } from "../../lib/constructs/deploy-environment";
import { parseConfig } from "../helpers/test-config";
import { renderSeed } from "../../lib/config/seed";
import { BaremetalStack } from "../../stacks/baremetal-stack";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const PXE = { interface: "br50", address: "10.50.0.1", dhcp_range: "10.50.0.100,10.50.0.200" };

function config(baremetal: Record<string, unknown>) {
  return parseConfig(stringify(testLab({ extra: { baremetal } })), "test.yaml", { cacheDir: "/var/cache/btw-test" });
}

function synth(stackClass: typeof BaremetalStack | typeof LabStack, baremetal: Record<string, unknown>): any {
  return synthStack((app) => new stackClass(app, "stack", config(baremetal)));
}

const commands = (tf: any) => Object.values(tf.resource.terraform_data).map((r: any) => r.provisioner.map((p: any) => p["local-exec"].command).join("\n"));

describe("the baremetal stack", () => {
  test("the lab captures the partitions of each image its VMs boot into the cache's artifacts folder", () => {
    const tf = synth(LabStack, {});
    const capture = commands(tf).filter((c) => c.includes("capture-partitions.sh"));
    expect(capture).toHaveLength(1);
    expect(capture[0]).toMatch(/--output-dir \/var\/cache\/btw-test\/artifacts\/btwtest\/minimal --profile minimal/);
  });

  test("with machines: capture, deploy environment and a PXE server that the destroy stops", () => {
    const tf = synth(BaremetalStack, { pxe: PXE, machines: [{ name: "metal1", mac: "52:54:00:00:00:01" }] });
    const all = commands(tf).join("\n");
    expect(all).toContain("capture-partitions.sh");
    expect(all).toContain("build-deploy-initramfs.sh");
    expect(all).toMatch(/pxe-server\.sh start --state-dir \/var\/lib\/btw-img\/pxe\/btwtest --interface br50 --address 10\.50\.0\.1 --dhcp-range 10\.50\.0\.100,10\.50\.0\.200/);
    const server = Object.values(tf.resource.terraform_data).find((r: any) => JSON.stringify(r).includes("pxe-server.sh start")) as any;
    // The destroy stops the folder the server recorded when it started (a changed state_dir leaves none running).
    expect(server.input).toEqual({ state_dir: "/var/lib/btw-img/pxe/btwtest" });
    expect(server.provisioner[1]["local-exec"]).toEqual({
      when: "destroy",
      command: expect.stringMatching(/pxe-server\.sh stop --state-dir \$\{try\(self\.output\.state_dir, "\/var\/lib\/btw-img\/pxe\/btwtest"\)\}$/),
    });
    const machines = JSON.parse(server.provisioner[0]["local-exec"].environment.PXE_MACHINES);
    expect(machines).toEqual([expect.objectContaining({ name: "metal1", mac: "52:54:00:00:00:01", profile: "minimal", wipe: false, first_boot: "kexec" })]);
    expect(machines[0].user_data).toContain("hostname: metal1");
  });

  test("multicast: the server gets its sessions' settings and each machine its transport; an all-HTTP server none", () => {
    const server = (baremetal: Record<string, unknown>) => {
      const tf = synth(BaremetalStack, baremetal);
      const step = Object.values(tf.resource.terraform_data).find((r: any) => JSON.stringify(r).includes("pxe-server.sh start")) as any;
      return { command: step.provisioner[0]["local-exec"].command as string, machines: JSON.parse(step.provisioner[0]["local-exec"].environment.PXE_MACHINES) };
    };
    const machines = [
      { name: "metal1", mac: "52:54:00:00:00:01" },
      { name: "metal2", mac: "52:54:00:00:00:02", transport: "http" },
    ];
    const multicast = server({ pxe: { ...PXE, transport: "multicast", multicast: { max_wait: 20 } }, machines });
    expect(multicast.command).toMatch(/ --multicast-port-base 9000 --multicast-max-wait 20 --multicast-wait 300 /);
    expect(multicast.command).not.toContain("--multicast-min-receivers");
    expect(multicast.machines.map((m: any) => m.transport)).toEqual(["multicast", "http"]);
    const http = server({ pxe: PXE, machines });
    expect(http.command).not.toContain("--multicast");
    expect(http.machines.map((m: any) => m.transport)).toEqual(["http", "http"]);
    expect(server({ pxe: { ...PXE, multicast: { min_receivers: 8 } }, machines: [{ ...machines[0], transport: "multicast" }] }).command).toContain("--multicast-min-receivers 8");
  });

  test("machines of two profiles: each profile gets its capture and its own deploy environment, and the server serves both", () => {
    const tf = synth(BaremetalStack, {
      pxe: PXE,
      machines: [
        { name: "metal1", mac: "52:54:00:00:00:01" },
        { name: "metal2", mac: "52:54:00:00:00:02", profile: "metal" },
      ],
    });
    const all = commands(tf);
    const builds = all.filter((c) => c.includes("build-deploy-initramfs.sh"));
    expect(builds).toHaveLength(2);
    const deployDir = (profile: string) => /--output-dir (\S+)/.exec(builds.find((c) => c.includes(`/images/${profile}-`)) ?? "")?.[1];
    expect(deployDir("minimal")).toBeDefined();
    expect(deployDir("metal")).toBeDefined();
    expect(deployDir("minimal")).not.toBe(deployDir("metal"));
    const start = all.find((c) => c.includes("pxe-server.sh start")) as string;
    expect(start).toContain(`--deploy minimal=${deployDir("minimal")}`);
    expect(start).toContain(`--deploy metal=${deployDir("metal")}`);
    expect(start).toMatch(/--artifacts minimal=\S+\/minimal --artifacts metal=\S+\/metal/);
  });

  test("a raid1 machine's profile is captured with its BIOS boot partition prepared; other profiles' without, as the lab captures them", () => {
    const baremetal = {
      pxe: PXE,
      machines: [
        { name: "raid", mac: "52:54:00:00:00:01", profile: "mdadm", layout: "raid1", disks: ["sda", "sdb"] },
        { name: "plain", mac: "52:54:00:00:00:02" },
      ],
    };
    const captures = (stack: typeof BaremetalStack | typeof LabStack) => commands(synth(stack, baremetal)).filter((c) => c.includes("capture-partitions.sh"));
    const [metal, lab] = [captures(BaremetalStack), captures(LabStack)];
    expect(metal.find((c) => c.includes("--profile mdadm"))).toMatch(/--profile mdadm --prepare bios-boot-mdraid$/);
    // The lab's VMs boot minimal: both stacks capture it the same way, into the same folder.
    expect(lab).toEqual([metal.find((c) => c.includes("--profile minimal"))]);
    expect(lab[0]).not.toContain("--prepare");
  });

  test("its image steps are the lab's (same addresses and commands): whichever stack deploys first builds them", () => {
    const steps = (tf: any, pattern: RegExp) =>
      Object.fromEntries(
        Object.entries(tf.resource.terraform_data)
          .filter(([name]) => pattern.test(name))
          .map(([name, step]: [string, any]) => [name, step.provisioner]),
      );
    const pipeline = /^(cloud-image_acquire|image-minimal_customize|capture-minimal_capture)_/;
    const baremetal = steps(synth(BaremetalStack, { pxe: PXE, machines: [{ name: "metal1", mac: "52:54:00:00:00:01" }] }), pipeline);
    expect(Object.keys(baremetal)).toHaveLength(3);
    expect(baremetal).toEqual(steps(synth(LabStack, {}), pipeline));
  });

  test("without machines: the artifacts, and the server's resource that only stops what an earlier deploy started", () => {
    const tf = synth(BaremetalStack, {});
    const all = commands(tf).join("\n");
    expect(all).toContain("capture-partitions.sh");
    expect(all).not.toContain("build-deploy-initramfs.sh");
    expect(all).not.toContain("pxe-server.sh start");
    const withMachines = synth(BaremetalStack, { pxe: PXE, machines: [{ name: "metal1", mac: "52:54:00:00:00:01" }] });
    const serverKey = (out: any) => Object.keys(out.resource.terraform_data).find((key) => JSON.stringify(out.resource.terraform_data[key]).includes("pxe-server.sh"));
    // The same resource: removing the last machine replaces it, and its destroy step (the old server's stop) runs.
    expect(serverKey(tf)).toBeDefined();
    expect(serverKey(tf)).toBe(serverKey(withMachines));
    const server = tf.resource.terraform_data[serverKey(tf)!];
    expect(server.provisioner[0]["local-exec"].command).toMatch(
      /pxe-server\.sh' stop --state-dir \/var\/lib\/btw-img\/pxe\/btwtest$|pxe-server\.sh stop --state-dir \/var\/lib\/btw-img\/pxe\/btwtest$/,
    );
    expect(server.provisioner[1]["local-exec"].when).toBe("destroy");
  });

  test("a machine's seed is keyed by its name and carries its user_data", () => {
    const lab = config({ pxe: PXE, machines: [{ name: "metal1", mac: "52:54:00:00:00:01", user_data: { runcmd: ["true"] } }] });
    const seed = renderSeed(lab, lab.baremetal.machines[0]);
    expect(seed.metaData).toContain("local-hostname: metal1");
    expect(seed.userData).toMatch(/runcmd:\n\s+- "?true"?/);
  });
});

describe("the baremetal config section", () => {
  const problems = (baremetal: Record<string, unknown>) => {
    try {
      config(baremetal);
      return [];
    } catch (error) {
      return (error as ConfigError).problems;
    }
  };

  test("machines need the PXE interface and address", () => {
    expect(problems({ machines: [{ name: "m1", mac: "52:54:00:00:00:01" }] })).toEqual([
      "baremetal.pxe.interface: is required when baremetal.machines is not empty",
      "baremetal.pxe.address: is required when baremetal.machines is not empty",
    ]);
  });

  test("duplicate MACs, bad MACs and unknown profiles are refused", () => {
    const found = problems({
      pxe: PXE,
      machines: [
        { name: "m1", mac: "52:54:00:00:00:01" },
        { name: "m2", mac: "52:54:00:00:00:01" },
        { name: "m3", mac: "52-54-00-00-00-03" },
      ],
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/baremetal\.machines\[1\]\.mac: duplicate machine mac '52:54:00:00:00:01'/),
        expect.stringMatching(/baremetal\.machines\[2\]\.mac: must be a lowercase MAC address/),
      ]),
    );
    expect(problems({ pxe: PXE, machines: [{ name: "m1", mac: "52:54:00:00:00:01", profile: "nosuch" }] })).toEqual([
      expect.stringMatching(/baremetal\.machines\[0\]\.profile: unknown profile 'nosuch'/),
    ]);
  });
});

describe("a machine's layout and disks reach the deploy environment", () => {
  let profilesDir: string;
  beforeAll(() => {
    // The shipped profiles, and two that carry what raid1 and the ZFS layouts need.
    profilesDir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-layout-stack-"));
    fs.cpSync(path.join(PROJECT_DIR, "profiles"), profilesDir, { recursive: true });
    for (const [name, packages] of [
      ["raid", ["mdadm"]],
      ["zfs", ["zfs-dkms", "zfs-initramfs", "zfsutils-linux"]],
    ] as const) {
      fs.mkdirSync(path.join(profilesDir, name, "install.d"), { recursive: true });
      fs.writeFileSync(path.join(profilesDir, name, "install.d", `${name}.list`), packages.join("\n") + "\n");
      fs.writeFileSync(path.join(profilesDir, name, "extends"), "metal\n");
    }
  });
  afterAll(() => fs.rmSync(profilesDir, { recursive: true, force: true }));

  const synthMachines = (machines: Record<string, unknown>[]): string[] => {
    const lab = parseConfig(stringify(testLab({ extra: { baremetal: { pxe: PXE, machines } } })), "test.yaml", { cacheDir: "/var/cache/btw-test", profilesDir });
    return commands(synthStack((app) => new BaremetalStack(app, "stack", lab)));
  };
  const machinesOf = (machines: Record<string, unknown>[]) => {
    const lab = parseConfig(stringify(testLab({ extra: { baremetal: { pxe: PXE, machines } } })), "test.yaml", { cacheDir: "/var/cache/btw-test", profilesDir });
    const tf = synthStack((app) => new BaremetalStack(app, "stack", lab));
    const server = Object.values(tf.resource.terraform_data).find((r: any) => JSON.stringify(r).includes("pxe-server.sh start")) as any;
    return JSON.parse(server.provisioner[0]["local-exec"].environment.PXE_MACHINES);
  };
  const build = (all: string[], profile: string) => all.find((c) => c.includes("build-deploy-initramfs.sh") && c.includes(`/images/${profile}-`)) as string;

  test("the server gets each machine's layout and its disks as /dev paths, in order; none for the only disk", () => {
    const machines = machinesOf([
      { name: "plain", mac: "52:54:00:00:00:01" },
      { name: "one", mac: "52:54:00:00:00:02", disk: "nvme0n1" },
      { name: "mirror", mac: "52:54:00:00:00:03", profile: "raid", layout: "raid1", disks: ["/dev/disk/by-id/wwn-0x5002538f4123abcd", "sdb"] },
    ]);
    expect(machines.map((m: any) => [m.name, m.layout, m.disks])).toEqual([
      ["plain", "single", []],
      ["one", "single", ["/dev/nvme0n1"]],
      ["mirror", "raid1", ["/dev/disk/by-id/wwn-0x5002538f4123abcd", "/dev/sdb"]],
    ]);
    expect(machines[0]).not.toHaveProperty("disk");
  });

  test("single machines only: the deploy environment's layout table is single's line, with nothing of the image beyond its drivers", () => {
    const all = synthMachines([{ name: "plain", mac: "52:54:00:00:00:01", profile: "raid" }]);
    expect(build(all, "raid")).toMatch(/ --layout single:single:1:1$/);
    expect(build(all, "raid")).not.toMatch(/--image-program|--image-module/);
  });

  test("a raid1 machine's deploy environment carries the image's mdadm and the md modules", () => {
    const all = synthMachines([{ name: "mirror", mac: "52:54:00:00:00:01", profile: "raid", layout: "raid1", disks: ["sda", "sdb"] }]);
    expect(build(all, "raid")).toMatch(/ --layout single:single:1:1 --layout raid1:raid1:2:- --image-program mdadm --image-module md_mod --image-module raid1$/);
  });

  test("a zfs-mirror machine's deploy environment carries the image's zpool, zfs, GNU tar and ZFS's modules", () => {
    const all = synthMachines([{ name: "pool", mac: "52:54:00:00:00:01", profile: "zfs", layout: "zfs-mirror", disks: ["sda", "sdb"] }]);
    expect(build(all, "zfs")).toMatch(
      / --layout single:single:1:1 --layout zfs-mirror:zfs:2:- --image-program zpool --image-program zfs --image-program tar --image-module zfs --image-module spl --image-module vfat --image-module nls_cp437 --image-module nls_ascii --image-module nls_utf8 --image-data \/usr\/share\/zfs\/compatibility\.d$/,
    );
  });

  test("zfs and zfs-mirror take ZFS's module, tools and GNU tar once for both", () => {
    expect(layoutArgs(["zfs", "zfs-mirror", "zfs"]).join(" ")).toBe(
      "--layout single:single:1:1 --layout zfs:zfs:1:1 --layout zfs-mirror:zfs:2:- --image-program zpool --image-program zfs --image-program tar --image-module zfs --image-module spl --image-module vfat --image-module nls_cp437 --image-module nls_ascii --image-module nls_utf8 --image-data /usr/share/zfs/compatibility.d",
    );
  });

  test("a layout changes the deploy environment's folder; the same machines give the same folder", () => {
    const folder = (machines: Record<string, unknown>[]) => /--output-dir (\S+)/.exec(build(synthMachines(machines), "raid"))?.[1];
    const single = folder([{ name: "m", mac: "52:54:00:00:00:01", profile: "raid" }]);
    const raid = folder([{ name: "m", mac: "52:54:00:00:00:01", profile: "raid", layout: "raid1", disks: ["sda", "sdb"] }]);
    expect(single).toBeDefined();
    expect(raid).not.toBe(single);
    expect(folder([{ name: "other", mac: "52:54:00:00:00:02", profile: "raid", layout: "raid1", disks: ["vda", "vdb"] }])).toBe(raid);
  });

  test("the server step is replaced when a machine's layout or disks change", () => {
    const trigger = (machine: Record<string, unknown>) => {
      const lab = parseConfig(stringify(testLab({ extra: { baremetal: { pxe: PXE, machines: [{ name: "m", mac: "52:54:00:00:00:01", profile: "raid", ...machine }] } } })), "test.yaml", {
        cacheDir: "/var/cache/btw-test",
        profilesDir,
      });
      const tf = synthStack((app) => new BaremetalStack(app, "stack", lab));
      const server = Object.values(tf.resource.terraform_data).find((r: any) => JSON.stringify(r).includes("pxe-server.sh start")) as any;
      return server.triggers_replace.machines;
    };
    expect(trigger({})).toBe("m 52:54:00:00:00:01 raid single  false kexec http");
    expect(trigger({ layout: "raid1", disks: ["sda", "sdb"] })).toBe("m 52:54:00:00:00:01 raid raid1 /dev/sda,/dev/sdb false kexec http");
    expect(trigger({ transport: "multicast" })).toBe("m 52:54:00:00:00:01 raid single  false kexec multicast");
  });
});
