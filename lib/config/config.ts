// The one place that reads a lab's YAML, applies defaults and validates it:
// the schema (./schema.ts) checks keys alone, then the checks across keys, the
// profiles and the host's networks here. Everything downstream receives a typed
// LabConfig (./types.ts) that is already valid.
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { DEFAULT_CONFIG_PATH, LOGIN_KEY, PROJECT_DIR } from "../paths";
import { collidingRoute, formatIpv4Net, HostNetworks, ipv4Number, netContains, parseIpv4Net, thisHost } from "./host-network";
import { LAYOUT_NEEDS, missingPackages } from "./layout";
import { ProfileError, readProfile } from "./profile";
import { absolutePath, badPath, DEFAULT_HOST, formatPath, LabInput, labSchema, machineDisks } from "./schema";
import { BmcConfig, enforcesSecureBoot, LabConfig, OVMF_FILES } from "./types";

export { DEFAULT_CONFIG_PATH, PROJECT_DIR } from "../paths";
export { DEFAULT_HOST } from "./schema";
export * from "./types";

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid lab config:\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

function describeIssue(issue: z.ZodIssue): string {
  const where = formatPath(issue.path) || "(top level)";
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    return `${where}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
  }
  if (issue.code === z.ZodIssueCode.invalid_type) {
    return issue.received === "undefined" ? `${where}: is required` : `${where}: expected ${issue.expected}, got ${issue.received}`;
  }
  if (issue.code === z.ZodIssueCode.invalid_enum_value) {
    return `${where}: '${String(issue.received)}' is not one of ${issue.options.map((o) => `'${String(o)}'`).join(", ")}`;
  }
  return `${where}: ${issue.message}`;
}

function bmcConfig(bmc: NonNullable<LabInput["baremetal"]["machines"][number]["bmc"]>): BmcConfig {
  const [host, port] = bmc.address.split(":");
  return {
    driver: bmc.driver,
    host,
    ...(port ? { port: Number(port) } : {}),
    username: bmc.username,
    ...(bmc.password_env ? { passwordEnv: bmc.password_env } : {}),
    ...(bmc.password_file ? { passwordFile: bmc.password_file } : {}),
    ...(bmc.firmware ? { firmware: bmc.firmware } : {}),
    ...(bmc.cipher_suite !== undefined ? { cipherSuite: bmc.cipher_suite } : {}),
    ...(bmc.system ? { system: bmc.system } : {}),
    ...(bmc.ca_file ? { caFile: bmc.ca_file } : {}),
    ...(bmc.tls_insecure ? { tlsInsecure: true } : {}),
  };
}

function defaultCacheDir(): string {
  return process.env.BTW_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(process.env.HOME || "/root", ".cache"), "btw-img");
}

export interface LoadOptions {
  profilesDir?: string;
  cacheDir?: string;
  /** The public key a user without ssh_authorized_keys gets (loadConfig: the project's login key, when setup made it). */
  loginKey?: string;
  /** The host the lab's networks are checked against (default: this one). */
  host?: HostNetworks;
}

/**
 * Checks against the networks the host already has: a network the lab creates must
 * not overlap one the host routes, and a PXE DHCP range must lie in the subnet of the
 * PXE address (the lab network's, or the one routed on the PXE bridge).
 */
function hostNetworkProblems(lab: LabConfig, host: HostNetworks): string[] {
  const problems: string[] = [];
  const { network, libvirt } = lab;
  // The host's routes say nothing about a remote libvirt (qemu+ssh://host/...).
  const localLibvirt = /^[a-z+]+:\/\/\//.test(libvirt.uri);
  if (network.cidr && network.mode !== "bridge" && network.create && localLibvirt) {
    const route = collidingRoute(network.cidr, { uri: libvirt.uri, name: network.name }, host);
    if (route) problems.push(`network.cidr: ${network.cidr} overlaps ${formatIpv4Net(route.net)}, which the host already routes ('${route.line}'): choose a free range`);
  }
  const { pxe } = lab.baremetal;
  if (pxe.dhcpRange && pxe.address) {
    // Without a subnet holding the address (its bridge not set up yet) only the order is checked.
    const subnets = [
      ...(network.cidr ? [{ net: parseIpv4Net(network.cidr), from: "network.cidr" }] : []),
      ...host
        .routes()
        .filter((route) => pxe.interface && route.dev === pxe.interface && !route.via)
        .map((route) => ({ net: route.net, from: `routed on ${pxe.interface}` })),
    ];
    const subnet = subnets.find(({ net }) => netContains(net, ipv4Number(pxe.address as string)));
    const [first, last] = pxe.dhcpRange.split(",");
    const outside = subnet ? [first, last].filter((end) => !netContains(subnet.net, ipv4Number(end))) : [];
    if (subnet && outside.length > 0) {
      problems.push(
        `baremetal.pxe.dhcp_range: ${outside.join(" and ")} ${outside.length > 1 ? "are" : "is"} outside ${formatIpv4Net(subnet.net)}, the subnet of baremetal.pxe.address ${pxe.address} (${subnet.from})`,
      );
    } else if (ipv4Number(first) > ipv4Number(last)) {
      problems.push(`baremetal.pxe.dhcp_range: the first address ${first} comes after the last ${last}`);
    }
  }
  return problems;
}

export function parseConfig(text: string, sourceFile: string, options: LoadOptions = {}): LabConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sourceFile,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ""}YAML error: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  const result = labSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(sourceFile, result.error.issues.map(describeIssue));
  }
  const lab = result.data;
  const profilesDir = options.profilesDir ?? (lab.profiles_dir ? path.resolve(path.dirname(sourceFile), lab.profiles_dir) : path.join(PROJECT_DIR, "profiles"));
  if (lab.profiles_dir && !fs.existsSync(profilesDir)) {
    throw new ConfigError(sourceFile, [`profiles_dir: folder ${profilesDir} does not exist`]);
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const config = toLabConfig(lab, sourceFile, profilesDir, cacheDir, options.loginKey);
  const problems: string[] = [];
  config.vms.forEach((vm, index) =>
    vm.playbooks.forEach((playbook, position) => {
      const where = `vms[${index}].playbooks[${position}]`;
      const stat = fs.statSync(playbook, { throwIfNoEntry: false });
      if (!stat) problems.push(`${where}: ${playbook} does not exist`);
      else if (!stat.isFile()) problems.push(`${where}: ${playbook} is not a file (give the playbook's .yml; its roles and vars go beside it)`);
      else if (badPath(playbook)) problems.push(`${where}: ${playbook} (resolved from the lab file's folder): ${badPath(playbook)}`);
      // Its folder is what the deploy fingerprints (roles, vars): it must not hold the lab's own files (cdktf.out, state).
      else if (!path.relative(path.dirname(playbook), path.dirname(sourceFile)).startsWith("..")) {
        problems.push(`${where}: ${playbook} is in the lab file's folder (or above it): put each playbook in a folder of its own, with its roles and vars, e.g. playbooks/site.yml`);
      }
    }),
  );
  // Resolved here (chain, layout, releases) so that a bad profile names the key that uses it.
  const checkProfile = (name: string, where: string) => {
    try {
      const profile = readProfile(profilesDir, name, lab.release);
      if (profile.noSecureBoot && enforcesSecureBoot(lab.libvirt.firmware)) {
        problems.push(`${where}: ${profile.noSecureBoot}, and libvirt.firmware is uefi-secure (use uefi or bios)`);
      }
    } catch (error) {
      if (!(error instanceof ProfileError)) throw error;
      problems.push(`${where}: ${error.message}`);
    }
  };
  checkProfile(lab.profile, "profile");
  lab.vms.forEach((vm, index) => vm.profile && checkProfile(vm.profile, `vms[${index}].profile`));
  lab.baremetal.machines.forEach((machine, index) => machine.profile && checkProfile(machine.profile, `baremetal.machines[${index}].profile`));
  // A layout's restored system assembles and boots its root with packages its profile must install.
  config.baremetal.machines.forEach((machine, index) => {
    if (LAYOUT_NEEDS[machine.layout].packages.length === 0) return;
    let packages: string[];
    try {
      packages = readProfile(profilesDir, machine.profile, lab.release).packages;
    } catch (error) {
      if (error instanceof ProfileError) return; // named above, by the key that chose the profile
      throw error;
    }
    const missing = missingPackages(machine.layout, packages);
    if (missing.length > 0) {
      problems.push(
        `baremetal.machines[${index}].layout: machine ${machine.name} has layout ${machine.layout}, which needs ${missing.join(", ")} in its profile, ` +
          `and profile ${machine.profile} does not install ${missing.length > 1 ? "them" : "it"} (add ${missing.length > 1 ? "them" : "it"} to an install.d list of the profile or a profile it extends)`,
      );
    }
  });
  problems.push(...hostNetworkProblems(config, options.host ?? thisHost));
  if (problems.length > 0) throw new ConfigError(sourceFile, problems);
  // Like the config's own paths, the cache folder reaches scripts and the engine as written.
  const badCacheDir = absolutePath.safeParse(cacheDir);
  if (!badCacheDir.success) {
    throw new ConfigError(sourceFile, [`the cache folder ${cacheDir} (BTW_CACHE_DIR): ${badCacheDir.error.issues[0].message}`]);
  }
  return config;
}

/** The one place YAML keys become the names the code uses. */
function toLabConfig(lab: LabInput, sourceFile: string, profilesDir: string, cacheDir: string, loginKey?: string): LabConfig {
  const { libvirt, baremetal } = lab;
  const { pxe } = baremetal;
  return {
    sourceFile,
    name: lab.name,
    release: lab.release,
    image: lab.image,
    profile: lab.profile,
    libvirt: {
      uri: libvirt.uri,
      accel: libvirt.accel,
      firmware: libvirt.firmware,
      poolPath: libvirt.pool_path,
      ovmfCode: libvirt.ovmf_code ?? OVMF_FILES[libvirt.firmware === "bios" ? "uefi" : libvirt.firmware].code,
      ovmfVars: libvirt.ovmf_vars ?? OVMF_FILES[libvirt.firmware === "bios" ? "uefi" : libvirt.firmware].vars,
    },
    network: lab.network,
    users: lab.users.map((user) => ({
      name: user.name,
      sshAuthorizedKeys: user.ssh_authorized_keys.length > 0 ? user.ssh_authorized_keys : loginKey ? [loginKey] : [],
      loginKey: user.ssh_authorized_keys.length === 0 && loginKey !== undefined,
      sudo: user.sudo,
    })),
    readiness: lab.readiness,
    state: { backend: lab.state.backend, connStr: lab.state.conn_str, lockTimeout: lab.state.lock_timeout },
    hosts: [
      { name: DEFAULT_HOST, uri: libvirt.uri, network: lab.network },
      ...lab.hosts.map((host) => ({
        name: host.name,
        uri: host.uri,
        network: { ...lab.network, name: host.network.name ?? `${lab.network.name}-${host.name}`, cidr: host.network.cidr ?? lab.network.cidr },
      })),
    ],
    vms: lab.vms.map((vm) => ({
      name: vm.name,
      host: vm.host ?? DEFAULT_HOST,
      profile: vm.profile ?? lab.profile,
      memory: vm.memory ?? lab.defaults.memory,
      vcpus: vm.vcpus ?? lab.defaults.vcpus,
      disk: vm.disk ?? lab.defaults.disk,
      mac: vm.mac,
      userData: vm.user_data ?? {},
      playbooks: vm.playbooks.map((playbook) => path.resolve(path.dirname(sourceFile), playbook)),
    })),
    baremetal: {
      outputDir: baremetal.output_dir ?? path.join(cacheDir, "artifacts", lab.name),
      pxe: {
        interface: pxe.interface,
        address: pxe.address,
        dhcpRange: pxe.dhcp_range,
        httpPort: pxe.http_port,
        stateDir: pxe.state_dir,
        multicast: { portBase: pxe.multicast.port_base, minReceivers: pxe.multicast.min_receivers, maxWait: pxe.multicast.max_wait, fallbackAfter: pxe.multicast.fallback_after },
      },
      reportTimeout: baremetal.report_timeout,
      powerRetries: baremetal.power_retries,
      machines: baremetal.machines.map((machine) => ({
        name: machine.name,
        mac: machine.mac,
        profile: machine.profile ?? lab.profile,
        disks: machineDisks(machine),
        layout: machine.layout,
        wipe: machine.wipe,
        firstBoot: machine.first_boot,
        transport: machine.transport ?? pxe.transport,
        userData: machine.user_data ?? {},
        ...(machine.bmc ? { bmc: bmcConfig(machine.bmc) } : {}),
      })),
    },
    profilesDir,
    cacheDir,
  };
}

export function loadConfig(file: string = process.env.BTW_CONFIG || DEFAULT_CONFIG_PATH, options: LoadOptions = {}): LabConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, "utf8");
  } catch (error) {
    throw new ConfigError(absolute, [`cannot read the file: ${(error as Error).message} (set BTW_CONFIG to a lab YAML file)`]);
  }
  return parseConfig(text, absolute, { loginKey: projectLoginKey(), ...options });
}

/** The public half of the project's login key (LOGIN_KEY), when setup made it. */
function projectLoginKey(): string | undefined {
  try {
    return fs.readFileSync(`${LOGIN_KEY}.pub`, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
