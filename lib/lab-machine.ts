// One lab VM: a copy-on-write overlay on the base volume, a cloud-init seed,
// the libvirt domain, and the readiness step that waits for cloud-init.
import * as path from "path";
import { Construct } from "constructs";
import { Domain, ITerraformDependable, resourceAddress, TerraformData, TerraformOutput, Volume } from "./cdk";
import { LabConfig, VmConfig } from "./config";
import { CustomizedImage } from "./customized-image";
import { hostStep, shellQuote } from "./host-step";
import { LabStorage } from "./lab-storage";
import { NetworkAttachment } from "./lab-network";
import { renderSeed } from "./seed";

export interface LabMachineProps {
  lab: LabConfig;
  vm: VmConfig;
  image: CustomizedImage;
  storage: LabStorage;
  network: NetworkAttachment;
  dependsOn: ITerraformDependable[];
}

const GIB = 1024 * 1024 * 1024;

/** Adds a serial port whose output virtlogd also writes to a file. */
function consoleLogXslt(consoleLog: string): string {
  return `<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes"/>
  <xsl:template match="node()|@*"><xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy></xsl:template>
  <xsl:template match="/domain/devices">
    <xsl:copy>
      <xsl:apply-templates select="node()|@*"/>
      <serial type="pty"><log file="${consoleLog}" append="off"/><target port="0"/></serial>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
`;
}

export class LabMachine extends Construct {
  readonly domain: Domain;
  readonly readiness: TerraformData;
  readonly domainName: string;
  readonly consoleLog: string;

  constructor(scope: Construct, id: string, props: LabMachineProps) {
    super(scope, id);
    const { lab, vm } = props;
    this.domainName = `btw-${lab.name}-${vm.name}`;
    this.consoleLog = `/var/log/libvirt/qemu/${this.domainName}-console.log`;
    const seedIso = path.join(lab.cacheDir, "labs", lab.name, "seeds", `${vm.name}.iso`);
    const seed = renderSeed(lab, vm);

    const seedStep = hostStep(this, "seed", {
      script: "make-seed-iso.sh",
      args: ["--name", vm.name, "--output", seedIso, "--validate-with", props.image.imagePath],
      environment: { USER_DATA: seed.userData, META_DATA: seed.metaData, NETWORK_CONFIG: seed.networkConfig },
      triggers: { user_data: seed.userData, meta_data: seed.metaData, network_config: seed.networkConfig, image: props.image.step.id },
      // Destroyed after the domain (which needs the seed), so this also takes the
      // console log and libvirt's QEMU log of the domain once nothing writes them.
      destroyCommand:
        `rm -f ${[seedIso, this.consoleLog, `/var/log/libvirt/qemu/${this.domainName}.log`].map(shellQuote).join(" ")}` +
        ` && { rmdir -p ${shellQuote(path.dirname(seedIso))} 2>/dev/null || true; }`,
      dependsOn: [props.image.step, ...props.dependsOn],
    });
    const seedVolume = new Volume(this, "seed-volume", {
      name: `${this.domainName}-seed.iso`,
      pool: props.storage.pool.name,
      source: seedIso,
      // libvirt reports an ISO file's format as "iso"; saying so keeps plans quiet.
      format: "iso",
      dependsOn: [seedStep],
      lifecycle: { replaceTriggeredBy: [resourceAddress(seedStep)] },
    });
    const overlay = new Volume(this, "disk", {
      name: `${this.domainName}.qcow2`,
      pool: props.storage.pool.name,
      baseVolumeId: props.storage.baseVolumeFor(props.image).id,
      format: "qcow2",
      size: vm.disk * GIB,
      // A new seed means a new machine: cloud-init's first boot runs on a fresh disk.
      lifecycle: { replaceTriggeredBy: [resourceAddress(seedStep)] },
    });

    const uefi = lab.libvirt.firmware === "uefi";
    this.domain = new Domain(this, "domain", {
      name: this.domainName,
      description: `btw-img lab ${lab.name}, VM ${vm.name}, profile ${vm.profile}`,
      type: lab.libvirt.accel === "kvm" ? "kvm" : "qemu",
      memory: vm.memory,
      vcpu: vm.vcpus,
      machine: uefi ? "q35" : "pc",
      firmware: uefi ? lab.libvirt.ovmf_code : undefined,
      nvram: uefi ? { file: `/var/lib/libvirt/qemu/nvram/${this.domainName}_VARS.fd`, template: lab.libvirt.ovmf_vars } : undefined,
      cpu: lab.libvirt.accel === "kvm" ? { mode: "host-passthrough" } : undefined,
      disk: [{ volumeId: overlay.id }, { volumeId: seedVolume.id }],
      bootDevice: [{ dev: ["hd"] }],
      networkInterface: [
        {
          networkId: props.network.networkId,
          networkName: props.network.networkName,
          bridge: props.network.bridge,
          mac: vm.mac,
          hostname: vm.name,
          waitForLease: props.network.waitForLease,
        },
      ],
      // A display adapter, as every PC has: Debian's image has GRUB draw on gfxterm,
      // which hangs a BIOS machine that has none before the kernel starts.
      video: { type: "vga" },
      qemuAgent: false,
      autostart: false,
      running: true,
      xml: { xslt: consoleLogXslt(this.consoleLog) },
      // Creation includes waiting for the DHCP lease, i.e. most of a boot.
      timeouts: { create: `${lab.readiness.timeout}s` },
      dependsOn: props.dependsOn,
      // The provider would swap the disk of a running domain in place, which keeps
      // booting the old one: a new disk or seed recreates the domain (and so re-runs readiness).
      lifecycle: { replaceTriggeredBy: [resourceAddress(overlay), resourceAddress(seedVolume)] },
    });

    this.readiness = hostStep(this, "cloud-init-ready", {
      script: "wait-for-cloud-init.sh",
      args: [
        "--uri", lab.libvirt.uri,
        "--domain", this.domainName,
        "--hostname", vm.name,
        "--timeout", String(lab.readiness.timeout),
        "--console-log", this.consoleLog,
      ],
      triggers: { domain: this.domain.id },
      // Only a run that saw cloud-init done gets here: a failed wait fails the apply.
      input: { ready: true },
      dependsOn: [this.domain],
    });

    new TerraformOutput(this, "vm", {
      staticId: true,
      value: {
        name: vm.name,
        domain: this.domainName,
        profile: vm.profile,
        address: this.domain.networkInterface.get(0).addresses,
        console_log: this.consoleLog,
        ready: this.readiness.output.lookup("ready"),
      },
    }).overrideLogicalId(`vm_${vm.name.replace(/-/g, "_")}`);
  }
}
