// What the rest of the code receives from lib/config/config.ts: a valid lab config,
// camelCase names, every default applied.
import { Layout } from "./layout";

export type Firmware = "uefi" | "uefi-secure" | "bios";

/**
 * Debian's OVMF builds (package ovmf): plain, and with Secure Boot enforced and
 * Microsoft's keys enrolled (what PCs ship with; it needs q35 with SMM).
 */
export const OVMF_FILES: Record<Exclude<Firmware, "bios">, { code: string; vars: string }> = {
  uefi: { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
  "uefi-secure": { code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" },
};

/** Firmware that starts only signed code: what it boots must have no unsigned kernel or kernel module. */
export function enforcesSecureBoot(firmware: Firmware): boolean {
  return firmware === "uefi-secure";
}

export interface LibvirtConfig {
  uri: string;
  accel: "kvm" | "tcg";
  firmware: Firmware;
  /** The lab's pool is the folder <poolPath>/<lab name>. */
  poolPath: string;
  ovmfCode: string;
  ovmfVars: string;
}

export interface NetworkConfig {
  name: string;
  mode: "nat" | "isolated" | "bridge";
  create: boolean;
  cidr?: string;
  bridge?: string;
}

export interface UserConfig {
  name: string;
  sshAuthorizedKeys: string[];
  /** Its key is the project's login key (it listed none of its own). */
  loginKey: boolean;
  sudo: boolean;
}

export interface PxeConfig {
  interface?: string;
  address?: string;
  /** Without it, the server is a proxy DHCP beside the LAN's own DHCP server. */
  dhcpRange?: string;
  httpPort: number;
  /** Holds each lab's server folder (lib/config/names.ts). */
  stateDir: string;
  multicast: MulticastConfig;
}

/** How a machine gets the artifacts: its own HTTP copy, or the server's multicast sessions. */
export const TRANSPORTS = ["http", "multicast"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** udpcast sessions of the PXE server (baremetal.pxe.multicast). */
export interface MulticastConfig {
  portBase: number;
  /** Undefined: each session waits for the machines that restore its artifact by multicast and are not installed. */
  minReceivers?: number;
  maxWait: number;
  fallbackAfter: number;
}

/** A machine's BMC (lib/bmc): where it is and who logs in; the password is read from passwordEnv or passwordFile when used. */
export interface BmcConfig {
  driver: "ipmi" | "redfish";
  host: string;
  port?: number;
  username: string;
  passwordEnv?: string;
  passwordFile?: string;
  firmware?: "uefi" | "bios";
  /** ipmi */
  cipherSuite?: number;
  /** redfish: the member of /redfish/v1/Systems, its CA, whether TLS goes unverified. */
  system?: string;
  caFile?: string;
  tlsInsecure?: boolean;
}

export interface MachineConfig {
  name: string;
  mac: string;
  profile: string;
  /** Whole disks as /dev paths, in order (disk: X is [X]); empty: the machine's only disk, which the deploy environment finds. */
  disks: string[];
  layout: Layout;
  wipe: boolean;
  firstBoot: "kexec" | "reboot";
  /** How it gets the artifacts (its own transport, else the server's). */
  transport: Transport;
  userData: Record<string, unknown>;
  bmc?: BmcConfig;
}

export interface BaremetalConfig {
  /** Artifacts of each profile go to <outputDir>/<profile>. */
  outputDir: string;
  pxe: PxeConfig;
  machines: MachineConfig[];
  /** Machines with a BMC: seconds without a report before a power cycle, and how many cycles before failed. */
  reportTimeout: number;
  powerRetries: number;
}

export interface VmConfig {
  name: string;
  /** The name of its host (DEFAULT_HOST: libvirt.uri). */
  host: string;
  profile: string;
  memory: number;
  vcpus: number;
  disk: number;
  mac?: string;
  userData: Record<string, unknown>;
  /** Absolute paths of the playbooks run against the VM after readiness, in order. */
  playbooks: string[];
}

export interface StateConfig {
  backend: "local" | "pg";
  /** A connection string without a password; undefined: the engine reads PG_CONN_STR. */
  connStr?: string;
  lockTimeout: number;
}

/** A libvirt connection the lab's VMs run on; each has its own pool, network and base volumes. */
export interface HostConfig {
  name: string;
  uri: string;
  network: NetworkConfig;
}

export interface LabConfig {
  sourceFile: string;
  name: string;
  release: "trixie" | "bookworm";
  image: { url: string; checksums: string };
  profile: string;
  libvirt: LibvirtConfig;
  network: NetworkConfig;
  users: UserConfig[];
  readiness: { timeout: number };
  state: StateConfig;
  /** DEFAULT_HOST (libvirt.uri, network) first, then hosts[]. */
  hosts: HostConfig[];
  vms: VmConfig[];
  baremetal: BaremetalConfig;
  profilesDir: string;
  cacheDir: string;
}
