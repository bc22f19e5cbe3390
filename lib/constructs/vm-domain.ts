// What libvirt holds of a lab VM: a copy-on-write overlay on the base volume of
// its image, its seed ISO as a volume, and the domain that boots from both.
import { Construct } from "constructs";
import { Domain, ITerraformDependable, LibvirtProvider, resourceAddress, Volume } from "../cdk";
import { enforcesSecureBoot, LabConfig, VmConfig } from "../config/config";
import { CustomizedImage } from "./customized-image";
import { NetworkAttachment } from "./lab-network";
import { LabStorage } from "./lab-storage";
import { VmNames } from "../config/names";
import { SeedDisk } from "./seed-disk";

export interface VmDomainProps {
  lab: LabConfig;
  vm: VmConfig;
  names: VmNames;
  image: CustomizedImage;
  storage: LabStorage;
  network: NetworkAttachment;
  /** The connection of the VM's host: the seed is uploaded, the overlay and domain created through it. */
  provider: LibvirtProvider;
  seed: SeedDisk;
  dependsOn: ITerraformDependable[];
}

const GIB = 1024 * 1024 * 1024;

/**
 * Adds a serial port whose output virtlogd also writes to a file and, for Secure
 * Boot, what the provider cannot say: SMM, and a loader that only SMM code may write.
 */
function domainXslt(consoleLog: string, secureBoot: boolean): string {
  const secure = secureBoot
    ? `
  <xsl:template match="/domain/os/loader">
    <xsl:copy><xsl:apply-templates select="@*"/><xsl:attribute name="secure">yes</xsl:attribute><xsl:apply-templates select="node()"/></xsl:copy>
  </xsl:template>
  <xsl:template match="/domain/features">
    <xsl:copy><xsl:apply-templates select="node()|@*"/><smm state="on"/></xsl:copy>
  </xsl:template>`
    : "";
  return `<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes"/>
  <xsl:template match="node()|@*"><xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy></xsl:template>
  <xsl:template match="/domain/devices">
    <xsl:copy>
      <xsl:apply-templates select="node()|@*"/>
      <serial type="pty"><log file="${consoleLog}" append="off"/><target port="0"/></serial>
    </xsl:copy>
  </xsl:template>${secure}
</xsl:stylesheet>
`;
}

/**
 * The seed volume readable by its owner alone (the provider makes every volume 0644; the
 * pool folder lets anyone reach a file by name, and the seed holds the user-data). QEMU
 * still reads it: libvirt gives the file to QEMU's user while the domain runs.
 */
const OWNER_ONLY_VOLUME_XSLT = `<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output omit-xml-declaration="yes" indent="yes"/>
  <xsl:template match="node()|@*"><xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy></xsl:template>
  <xsl:template match="/volume/target">
    <xsl:copy>
      <xsl:apply-templates select="node()[not(self::permissions)]|@*"/>
      <permissions><mode>0600</mode></permissions>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
`;

export class VmDomain extends Construct {
  readonly domain: Domain;

  constructor(scope: Construct, id: string, props: VmDomainProps) {
    super(scope, id);
    const { lab, vm, names, seed } = props;
    const { provider } = props;
    const seedVolume = new Volume(this, "seed-volume", {
      provider,
      name: names.seedVolume,
      pool: props.storage.pool.name,
      source: seed.isoPath,
      // libvirt reports an ISO file's format as "iso"; saying so keeps plans quiet.
      format: "iso",
      xml: { xslt: OWNER_ONLY_VOLUME_XSLT },
      dependsOn: [seed.step],
      lifecycle: { replaceTriggeredBy: [resourceAddress(seed.step)] },
    });
    const overlay = new Volume(this, "disk", {
      provider,
      name: names.overlayVolume,
      pool: props.storage.pool.name,
      baseVolumeId: props.storage.baseVolumeFor(props.image).id,
      format: "qcow2",
      size: vm.disk * GIB,
      // A new seed means a new machine: cloud-init's first boot runs on a fresh disk.
      lifecycle: { replaceTriggeredBy: [resourceAddress(seed.step)] },
    });

    const uefi = lab.libvirt.firmware !== "bios";
    this.domain = new Domain(this, "domain", {
      provider,
      name: names.domain,
      description: `btw-img lab ${lab.name}, VM ${vm.name}, profile ${vm.profile}`,
      type: lab.libvirt.accel === "kvm" ? "kvm" : "qemu",
      memory: vm.memory,
      vcpu: vm.vcpus,
      machine: uefi ? "q35" : "pc",
      firmware: uefi ? lab.libvirt.ovmfCode : undefined,
      nvram: uefi ? { file: names.nvram, template: lab.libvirt.ovmfVars } : undefined,
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
      xml: { xslt: domainXslt(names.consoleLog, enforcesSecureBoot(lab.libvirt.firmware)) },
      // Creation includes waiting for the DHCP lease, i.e. most of a boot.
      timeouts: { create: `${lab.readiness.timeout}s` },
      dependsOn: props.dependsOn,
      // The provider would swap the disk of a running domain in place, which keeps
      // booting the old one: a new disk or seed recreates the domain (and so re-runs readiness).
      lifecycle: { replaceTriggeredBy: [resourceAddress(overlay), resourceAddress(seedVolume)] },
    });
  }
}
