// The names a lab gives what it creates on the host: libvirt objects, the files
// libvirt and our steps name after them, the PXE server's folder. Made here only,
// for the constructs and for `btw` (bin/lab-info.ts prints what it needs).
// Every libvirt name starts with btw-<lab>, so labs sharing a host never collide;
// the lab's network is the exception: it is called what network.name says.
import * as path from "path";

function labPrefix(labName: string): string {
  return `btw-${labName}`;
}

/**
 * The PostgreSQL schema holding one stack's state (state.backend pg): one per lab and
 * stack, so labs and stacks sharing a database never share state. Lab names have no '_'.
 */
export function stateSchemaName(labName: string, stack: string): string {
  return `btw_${labName.replace(/-/g, "_")}_${stack}`;
}

/** The lab's storage pool on a host (other hosts than the default: btw-<lab>.<host>; '.' is in no lab or host name). */
export function poolName(labName: string, host = "default"): string {
  return host === "default" ? labPrefix(labName) : `${labPrefix(labName)}.${host}`;
}

/** The folder of the lab's pool on a host, under libvirt.pool_path. */
export function poolDir(poolRoot: string, labName: string, host = "default"): string {
  return path.join(poolRoot, host === "default" ? labName : `${labName}.${host}`);
}

/** The base volume of a customized image (named by its file), shared by the VMs that boot it. */
export function baseVolumeName(labName: string, imageFile: string): string {
  return `${labPrefix(labName)}-base-${imageFile}`;
}

/** The libvirt domain of a VM (`btw console VM`, `btw status`). */
export function domainName(labName: string, vmName: string): string {
  return `${labPrefix(labName)}-${vmName}`;
}

/** A machine's cloud-init instance-id: a new one whenever its seed changes (seedHash) makes cloud-init apply it again. */
export function instanceId(labName: string, machineName: string, seedHash: string): string {
  return `${labPrefix(labName)}-${machineName}-${seedHash}`;
}

export interface VmNames {
  domain: string;
  /** The copy-on-write disk on the base volume. */
  overlayVolume: string;
  /** The volume holding the seed ISO. */
  seedVolume: string;
  /** Where the seed ISO is built, in the cache. */
  seedIso: string;
  /** The domain's UEFI variables. */
  nvram: string;
  /** The serial console, as virtlogd writes it. */
  consoleLog: string;
  /** libvirt's QEMU log of the domain. */
  qemuLog: string;
}

/** Everything named after one VM of the lab. */
export function vmNames(lab: { name: string; cacheDir: string }, vmName: string): VmNames {
  const domain = domainName(lab.name, vmName);
  return {
    domain,
    overlayVolume: `${domain}.qcow2`,
    seedVolume: `${domain}-seed.iso`,
    seedIso: path.join(lab.cacheDir, "labs", lab.name, "seeds", `${vmName}.iso`),
    nvram: `/var/lib/libvirt/qemu/nvram/${domain}_VARS.fd`,
    consoleLog: `/var/log/libvirt/qemu/${domain}-console.log`,
    qemuLog: `/var/log/libvirt/qemu/${domain}.log`,
  };
}

/** The PXE server's folder (pxe-server.sh --state-dir) under baremetal.pxe.state_dir. */
export function pxeServerDir(stateRoot: string, labName: string): string {
  return path.join(stateRoot, labName);
}

/** Where pxe-server.sh records which machines are installed, beside the server's folder so a redeploy keeps it. */
export function pxeRecordsDir(serverDir: string): string {
  return `${serverDir}.records`;
}
