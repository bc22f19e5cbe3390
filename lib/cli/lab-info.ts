// What the commands (bin/btw.ts, and through bin/lab-info.ts the CI jobs) need
// of a lab config: its VMs with their libvirt names and hosts, its own cdktf
// output folder, and where its state is kept.
import * as path from "path";
import { LabConfig } from "../config/types";
import { domainName, stateSchemaName } from "../config/names";
import { virshUri } from "../config/libvirt-uri";
import { PROJECT_DIR } from "../paths";
import { DEFAULT_OUTDIR, labOutdir } from "../plan/synth-output";

export interface LabVm {
  name: string;
  domain: string;
  host: string;
  /** The URI of the VM's libvirt host, as virsh takes it. */
  uri: string;
}

export interface LabInfo {
  name: string;
  libvirtUri: string;
  vms: LabVm[];
  /** The lab's own cdktf output folder in the project, for `cdktf ... --output`: labs deployed at once never mix. */
  synthDir: string;
  state: { backend: string; connStr: string; schemas: string[]; lockTimeout: number };
}

export function labInfo(lab: LabConfig): LabInfo {
  return {
    name: lab.name,
    libvirtUri: lab.libvirt.uri,
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      domain: domainName(lab.name, vm.name),
      host: vm.host,
      uri: virshUri(lab.hosts.find((host) => host.name === vm.host)?.uri ?? lab.libvirt.uri),
    })),
    synthDir: labOutdir(path.join(PROJECT_DIR, DEFAULT_OUTDIR), lab.name),
    state: {
      backend: lab.state.backend,
      connStr: lab.state.connStr ?? "",
      // The schemas of the lab and baremetal stacks, to name who holds their lock.
      schemas: ["lab", "baremetal"].map((stack) => stateSchemaName(lab.name, stack)),
      lockTimeout: lab.state.lockTimeout,
    },
  };
}
