// One lab VM: its cloud-init seed (SeedDisk), what libvirt holds of it (VmDomain:
// overlay disk, seed volume, domain) and the wait until cloud-init is done in it
// (CloudInitReadiness), then its Ansible playbooks, if it has any (VmPlaybooks).
import { Construct } from "constructs";
import { Domain, ITerraformDependable, MAIN_CHILD_ID, TerraformData, TerraformOutput } from "../cdk";
import { CloudInitReadiness } from "./cloud-init-readiness";
import { LabConfig, VmConfig } from "../config/config";
import { CustomizedImage } from "./customized-image";
import { LabHost } from "./lab-host";
import { vmNames } from "../config/names";
import { SeedDisk } from "./seed-disk";
import { VmDomain } from "./vm-domain";
import { VmPlaybooks } from "./vm-playbooks";

export interface LabMachineProps {
  lab: LabConfig;
  vm: VmConfig;
  image: CustomizedImage;
  /** The libvirt host it runs on. */
  host: LabHost;
  dependsOn: ITerraformDependable[];
}

export class LabMachine extends Construct {
  readonly domain: Domain;
  readonly readiness: TerraformData;
  readonly domainName: string;
  readonly consoleLog: string;

  constructor(scope: Construct, id: string, props: LabMachineProps) {
    super(scope, id);
    const { lab, vm } = props;
    const names = vmNames(lab, vm.name);
    this.domainName = names.domain;
    this.consoleLog = names.consoleLog;
    // The ids keep each resource at the address it had before these parts were split
    // out: vm-<name>_seed_…, vm-<name>_disk_…, vm-<name>_domain_…, vm-<name>_cloud-init-ready_…
    const seed = new SeedDisk(this, "seed", { lab, vm, names, image: props.image, dependsOn: props.dependsOn });
    const { host } = props;
    this.domain = new VmDomain(this, MAIN_CHILD_ID, { ...props, storage: host.storage, network: host.network.attachment, provider: host.provider, names, seed }).domain;
    this.readiness = new CloudInitReadiness(this, "cloud-init-ready", { lab, vm, uri: host.config.uri, names, domain: this.domain }).step;
    if (vm.playbooks.length > 0) {
      new VmPlaybooks(this, "playbooks", { lab, vm, names, uri: host.config.uri, domain: this.domain, readiness: this.readiness });
    }

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
