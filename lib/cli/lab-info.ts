// What the commands (bin/btw.ts, and through bin/lab-info.ts the CI jobs) need
// of a lab config: its VMs with their libvirt names and hosts, its own cdktf
// output folder, and where its state is kept.
import * as path from "path";
import { LabConfig } from "../config/types";
import { domainName, stateSchemaName, vmNames } from "../config/names";
import { virshUri } from "../config/libvirt-uri";
import { LOGIN_KEY, PROJECT_DIR } from "../paths";
import { DEFAULT_OUTDIR, labOutdir } from "../plan/synth-output";

export interface LabVm {
  name: string;
  domain: string;
  host: string;
  /** The URI of the VM's libvirt host, as virsh takes it. */
  uri: string;
  /** Its serial console's log, when it is on this machine (the VM runs on libvirt.uri's host). */
  consoleLog?: string;
}

export interface LabInfo {
  name: string;
  libvirtUri: string;
  vms: LabVm[];
  /** The lab's own cdktf output folder in the project, for `cdktf ... --output`: labs deployed at once never mix. */
  synthDir: string;
  /** Who `btw ssh` logs in as: the lab's first user (else the image's default), with the project's key when it has it. */
  login: { user: string; key?: string };
  state: { backend: string; connStr: string; schemas: string[]; lockTimeout: number };
}

export function labInfo(lab: LabConfig): LabInfo {
  return {
    name: lab.name,
    libvirtUri: lab.libvirt.uri,
    vms: lab.vms.map((vm) => {
      const uri = virshUri(lab.hosts.find((host) => host.name === vm.host)?.uri ?? lab.libvirt.uri);
      // qemu:///...: the libvirtd of this machine, whose virtlogd writes the console here.
      return { name: vm.name, domain: domainName(lab.name, vm.name), host: vm.host, uri, ...(/^qemu:\/\/\//.test(uri) ? { consoleLog: vmNames(lab, vm.name).consoleLog } : {}) };
    }),
    synthDir: labOutdir(path.join(PROJECT_DIR, DEFAULT_OUTDIR), lab.name),
    login: { user: lab.users[0]?.name ?? "debian", ...(lab.users[0]?.loginKey ? { key: LOGIN_KEY } : {}) },
    state: {
      backend: lab.state.backend,
      connStr: lab.state.connStr ?? "",
      // The schemas of the lab and baremetal stacks, to name who holds their lock.
      schemas: ["lab", "baremetal"].map((stack) => stateSchemaName(lab.name, stack)),
      lockTimeout: lab.state.lockTimeout,
    },
  };
}
