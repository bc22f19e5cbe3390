// The lab stack synthesized in memory: domains, volumes, network and image steps.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { App } from "../../lib/cdk";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { useStateBackend } from "../../lib/plan/state-backend";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

type TfJson = { terraform: { backend?: any; required_providers: Record<string, { source: string; version: string }> }; resource: Record<string, Record<string, any>> };

function synthLab(lab: Record<string, unknown>): TfJson {
  const config = parseConfig(stringify(lab), "test.yaml", { cacheDir: "/var/cache/btw-test" });
  return synthStack((app) => new LabStack(app, "lab", config));
}

function only(resources: Record<string, any>): any {
  const values = Object.values(resources);
  expect(values).toHaveLength(1);
  return values[0];
}

describe("the lab stack synthesizes", () => {
  test("tcg gives domain type qemu, kvm gives type kvm with host CPU", () => {
    const tcg = only(synthLab(testLab()).resource.libvirt_domain);
    expect(tcg.type).toBe("qemu");
    expect(tcg.cpu).toBeUndefined();
    const kvm = only(synthLab(testLab({ extra: { libvirt: { accel: "kvm", firmware: "bios" } } })).resource.libvirt_domain);
    expect(kvm.type).toBe("kvm");
    expect(kvm.cpu).toEqual({ mode: "host-passthrough" });
  });

  test("UEFI domains get OVMF, q35 and their own NVRAM file; BIOS domains get none", () => {
    const uefi = only(synthLab(testLab({ extra: { libvirt: { accel: "tcg", firmware: "uefi" } } })).resource.libvirt_domain);
    expect(uefi.machine).toBe("q35");
    expect(uefi.firmware).toBe("/usr/share/OVMF/OVMF_CODE_4M.fd");
    expect(uefi.nvram).toEqual({ file: "/var/lib/libvirt/qemu/nvram/btw-btwtest-vm1_VARS.fd", template: "/usr/share/OVMF/OVMF_VARS_4M.fd" });
    expect(uefi.xml.xslt).not.toContain("smm");
    const bios = only(synthLab(testLab()).resource.libvirt_domain);
    expect(bios.machine).toBe("pc");
    expect(bios.nvram).toBeUndefined();
  });

  test("uefi-secure domains get OVMF with Secure Boot and Microsoft's keys, SMM and a secure loader", () => {
    const secure = only(synthLab(testLab({ extra: { libvirt: { accel: "tcg", firmware: "uefi-secure" } } })).resource.libvirt_domain);
    expect(secure.machine).toBe("q35");
    expect(secure.firmware).toBe("/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
    expect(secure.nvram.template).toBe("/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
    expect(secure.xml.xslt).toContain('<smm state="on"/>');
    expect(secure.xml.xslt).toMatch(/match="\/domain\/os\/loader"[\s\S]*<xsl:attribute name="secure">yes<\/xsl:attribute>/);
    // Files named in the config win over the firmware's defaults.
    const own = only(synthLab(testLab({ extra: { libvirt: { accel: "tcg", firmware: "uefi-secure", ovmf_code: "/fw/SB.fd", ovmf_vars: "/fw/SBVARS.fd" } } })).resource.libvirt_domain);
    expect([own.firmware, own.nvram.template]).toEqual(["/fw/SB.fd", "/fw/SBVARS.fd"]);
  });

  test("each VM gets an overlay on one shared base volume per profile", () => {
    const tf = synthLab(testLab({ vms: [{ name: "a", disk: 6 }, { name: "b" }, { name: "c" }] }));
    const volumes = Object.values(tf.resource.libvirt_volume);
    const bases = volumes.filter((v: any) => v.source && v.format === "qcow2");
    const overlays = volumes.filter((v: any) => v.base_volume_id);
    expect(bases).toHaveLength(1);
    expect(overlays).toHaveLength(3);
    expect(overlays.map((v: any) => v.size)).toEqual([6 * 2 ** 30, 4 * 2 ** 30, 4 * 2 ** 30]);
    expect(Object.keys(tf.resource.libvirt_domain)).toHaveLength(3);
  });

  test("an isolated network is created with mode none and DHCP; an existing one is only referenced", () => {
    const created = only(synthLab(testLab()).resource.libvirt_network);
    expect(created).toMatchObject({ name: "btwtest-net", mode: "none", addresses: ["10.213.7.0/24"], dhcp: { enabled: true } });
    const existing = synthLab(testLab({ extra: { network: { name: "default", create: false } } }));
    expect(existing.resource.libvirt_network).toBeUndefined();
    expect(only(existing.resource.libvirt_domain).network_interface[0].network_name).toBe("default");
  });

  test("image steps are terraform_data resources whose triggers are the inputs that matter", () => {
    const tf = synthLab(testLab());
    const steps = tf.resource.terraform_data;
    const acquire = Object.values(steps).find((s: any) => s.triggers_replace.url) as any;
    expect(acquire.triggers_replace.url).toBe("http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz");
    const customize = Object.values(steps).find((s: any) => s.triggers_replace.profile) as any;
    expect(customize.triggers_replace.profile).toBe("minimal");
    expect(Object.values(customize.triggers_replace.profile_files).every((sha) => /^[0-9a-f]{64}$/.test(sha as string))).toBe(true);
    expect(Object.keys(customize.triggers_replace.profile_files)).toContain("minimal/install.d/base.list");
  });

  test("the image steps keep the addresses an existing lab's state holds (the VMs are built on them)", () => {
    const tf = synthLab(testLab({ vms: [{ name: "a" }, { name: "b", profile: "metal" }] }));
    expect(Object.keys(tf.resource.terraform_data)).toEqual(
      expect.arrayContaining([
        "cloud-image_acquire_87DDA14D",
        "image-minimal_customize_966656C6",
        "image-metal_customize_97954E60",
        "capture-minimal_capture_46FD293D",
        "capture-metal_capture_8A3BE748",
      ]),
    );
  });

  test("a VM's resources keep their addresses, and a new disk or seed recreates its domain and waits for it again", () => {
    const tf = synthLab(testLab());
    // The addresses a deployed lab's state holds: a change here replaces every VM.
    const seed = "terraform_data.vm-vm1_seed_6EAD1291";
    const seedVolume = "libvirt_volume.vm-vm1_seed-volume_C820F16B";
    const disk = "libvirt_volume.vm-vm1_disk_CD81C3E7";
    const domain = "libvirt_domain.vm-vm1_domain_2CAD5C3A";
    const ready = "terraform_data.vm-vm1_cloud-init-ready_2A0CCD16";
    const at = (address: string) => {
      const [type, name] = address.split(".");
      expect(Object.keys(tf.resource[type])).toContain(name);
      return tf.resource[type][name];
    };
    expect(at(seedVolume).lifecycle.replace_triggered_by).toEqual([seed]);
    expect(at(disk).lifecycle.replace_triggered_by).toEqual([seed]);
    expect(at(domain).lifecycle.replace_triggered_by).toEqual([disk, seedVolume]);
    expect(at(domain).disk).toEqual([{ volume_id: `\${${disk}.id}` }, { volume_id: `\${${seedVolume}.id}` }]);
    expect(at(ready).triggers_replace.domain).toBe(`\${${domain}.id}`);
    expect(at(ready).depends_on).toEqual([domain]);
    expect(at(seed).provisioner[0]["local-exec"].command).toContain("make-seed-iso.sh --name vm1");
  });

  test("the App writes one stack named lab", () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-app-"));
    const app = new App({ outdir });
    new LabStack(app, "lab", parseConfig(stringify(testLab()), "x.yaml"));
    app.synth();
    expect(fs.readdirSync(path.join(outdir, "stacks"))).toEqual(["lab"]);
    fs.rmSync(outdir, { recursive: true, force: true });
  });
});

describe("the state backend of each stack", () => {
  test("state.backend pg gives each stack its own schema and, without state.conn_str, no connection string in cdk.tf.json", () => {
    const config = parseConfig(stringify(testLab({ name: "web-1", extra: { state: { backend: "pg" } } })), "test.yaml", { cacheDir: "/var/cache/btw-test" });
    const tf = synthStack((app) => {
      const stack = new LabStack(app, "lab", config);
      useStateBackend(stack, config, "lab");
      return stack;
    });
    expect(tf.terraform.backend).toEqual({ pg: { schema_name: "btw_web_1_lab" } });
  });

  test("state.backend local keeps one state file per lab and stack in BTW_STATE_DIR", () => {
    const config = parseConfig(stringify(testLab({ name: "web" })), "test.yaml", { cacheDir: "/var/cache/btw-test" });
    const tf = synthStack((app) => {
      const stack = new LabStack(app, "baremetal", config);
      useStateBackend(stack, config, "baremetal");
      return stack;
    });
    expect(tf.terraform.backend.local.path).toMatch(/\/web-baremetal\.tfstate$/);
  });
});

describe("a lab across several libvirt hosts", () => {
  const twoHosts = testLab({
    name: "mh",
    vms: [{ name: "a" }, { name: "b", host: "h2" }],
    extra: { hosts: [{ name: "h2", uri: "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id&socket=/run/h2/libvirt-sock", network: { cidr: "10.213.72.0/24" } }] },
  });

  test("each host gets its own aliased provider, network, pool and base volume; each VM is created through its host", () => {
    const tf: any = synthLab(twoHosts);
    const providers = (tf as any).provider.libvirt;
    expect(providers).toEqual([{ uri: "qemu:///system" }, { alias: "h2", uri: "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id&socket=/run/h2/libvirt-sock" }]);
    const onHost = (resources: Record<string, any>) =>
      Object.values(resources)
        .map((r: any) => [r.name, r.provider ?? "libvirt"])
        .sort();
    expect(onHost(tf.resource.libvirt_network)).toEqual([
      ["mh-net", "libvirt"],
      ["mh-net-h2", "libvirt.h2"],
    ]);
    expect(
      Object.values(tf.resource.libvirt_network)
        .map((n: any) => n.addresses[0])
        .sort(),
    ).toEqual(["10.213.7.0/24", "10.213.72.0/24"]);
    expect(onHost(tf.resource.libvirt_pool)).toEqual([
      ["btw-mh", "libvirt"],
      ["btw-mh.h2", "libvirt.h2"],
    ]);
    expect(
      Object.values(tf.resource.libvirt_pool)
        .map((p: any) => p.target.path)
        .sort(),
    ).toEqual(["/var/lib/libvirt/btw-img/mh", "/var/lib/libvirt/btw-img/mh.h2"]);
    expect(onHost(tf.resource.libvirt_domain)).toEqual([
      ["btw-mh-a", "libvirt"],
      ["btw-mh-b", "libvirt.h2"],
    ]);
    const volumes = Object.values(tf.resource.libvirt_volume) as any[];
    // One base volume per host, both uploaded from the one image built on the build host.
    const bases = volumes.filter((v) => v.source && v.format === "qcow2");
    expect(bases.map((v) => v.provider ?? "libvirt").sort()).toEqual(["libvirt", "libvirt.h2"]);
    expect(new Set(bases.map((v) => v.source)).size).toBe(1);
    expect(volumes.filter((v) => ["btw-mh-b.qcow2", "btw-mh-b-seed.iso"].includes(v.name)).map((v) => v.provider)).toEqual(["libvirt.h2", "libvirt.h2"]);
    // Readiness asks the guest agent through the VM's own host.
    const waits = Object.values(tf.resource.terraform_data)
      .map((d: any) => d.provisioner?.[0]?.["local-exec"]?.command ?? "")
      .filter((c: string) => c.includes("wait-for-cloud-init.sh"));
    expect(waits.find((c: string) => c.includes("btw-mh-b"))).toContain("'qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id&socket=/run/h2/libvirt-sock'");
    expect(waits.find((c: string) => c.includes("btw-mh-a"))).toContain("--uri qemu:///system");
  });

  test("a host known by a known-hosts file of its own: the provider reads knownhosts=, virsh (readiness, host check) gets libvirt's libssh transport reading it as known_hosts=", () => {
    const uri = "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id&knownhosts=/k/known_hosts&socket=/run/h2/libvirt-sock";
    const tf: any = synthLab(testLab({ name: "mh", vms: [{ name: "a" }, { name: "b", host: "h2" }], extra: { hosts: [{ name: "h2", uri, network: { cidr: "10.213.72.0/24" } }] } }));
    expect(tf.provider.libvirt[1]).toEqual({ alias: "h2", uri });
    const virshUri = "'qemu+libssh://root@127.0.0.1:2222/system?keyfile=/k/id&knownhosts=/k/known_hosts&socket=/run/h2/libvirt-sock&known_hosts=/k/known_hosts'";
    const commands = Object.values(tf.resource.terraform_data).map((d: any) => d.provisioner?.[0]?.["local-exec"]?.command ?? "");
    expect(commands.find((c: string) => c.includes("wait-for-cloud-init.sh") && c.includes("btw-mh-b"))).toContain(`--uri ${virshUri}`);
    expect(commands.find((c: string) => c.includes("check-host.sh") && c.includes("2222"))).toContain(`--uri ${virshUri}`);
  });

  test("a lab without hosts keeps its single provider and the addresses it had", () => {
    const tf: any = synthLab(testLab({ name: "mh" }));
    expect(tf.provider.libvirt).toEqual([{ uri: "qemu:///system" }]);
    // The one provider has no alias: its resources keep their addresses and the provider they had.
    expect(Object.values(tf.resource.libvirt_domain).map((d: any) => d.provider)).toEqual(["libvirt"]);
    expect(Object.keys(tf.resource.libvirt_pool)).toEqual([expect.stringMatching(/^storage_pool_/)]);
  });
});
