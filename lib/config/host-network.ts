// The host's IPv4 networks as the config checks see them: the routes it already
// has (`ip -4 route show`) and the bridge libvirt gave a network, plus the
// address arithmetic those checks need.
import { spawnSync } from "child_process";

export interface Ipv4Net {
  /** The network address as an unsigned 32-bit number. */
  address: number;
  bits: number;
}

function mask(bits: number): number {
  return bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
}

/** A dotted IPv4 address (octets already checked) as an unsigned 32-bit number. */
export function ipv4Number(address: string): number {
  return address.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);
}

/** `10.77.0.0/24`, or a bare address as a /32. */
export function parseIpv4Net(text: string): Ipv4Net {
  const [address, bits = "32"] = text.split("/");
  return { address: (ipv4Number(address) & mask(Number(bits))) >>> 0, bits: Number(bits) };
}

export function formatIpv4Net(net: Ipv4Net): string {
  const octets = [24, 16, 8, 0].map((shift) => (net.address >>> shift) & 255);
  return `${octets.join(".")}/${net.bits}`;
}

export function netContains(net: Ipv4Net, address: number): boolean {
  return (address & mask(net.bits)) >>> 0 === net.address;
}

function netsOverlap(a: Ipv4Net, b: Ipv4Net): boolean {
  const shared = mask(Math.min(a.bits, b.bits));
  return (a.address & shared) >>> 0 === (b.address & shared) >>> 0;
}

export interface HostRoute {
  net: Ipv4Net;
  dev?: string;
  /** Set for a route through a gateway; a connected subnet has none. */
  via?: string;
  /** The route as `ip` printed it, for messages. */
  line: string;
}

/** Routes of `ip -4 route show`; the default route says nothing about a subnet and is left out. */
export function parseRoutes(text: string): HostRoute[] {
  const routes: HostRoute[] = [];
  for (const line of text.split("\n").map((l) => l.trim())) {
    const words = line.split(/\s+/);
    // A route type (blackhole, unreachable, ...) may come before the destination.
    const destination = /^[a-z]+$/.test(words[0]) && words[0] !== "default" ? words[1] : words[0];
    if (!/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(destination ?? "")) continue;
    const after = (key: string) => (words.includes(key) ? words[words.indexOf(key) + 1] : undefined);
    routes.push({ net: parseIpv4Net(destination), dev: after("dev"), via: after("via"), line });
  }
  return routes;
}

/** What the config reads from the host; tests pass their own. */
export interface HostNetworks {
  routes(): HostRoute[];
  /** The bridge of the libvirt network `name`, when libvirt has that network. */
  networkBridge(uri: string, name: string): string | undefined;
}

export const thisHost: HostNetworks = {
  routes() {
    const result = spawnSync("ip", ["-4", "route", "show"], { encoding: "utf8", timeout: 10_000 });
    // Without iproute2 (a synth-only CI job) there is nothing to check against.
    return result.status === 0 ? parseRoutes(result.stdout) : [];
  },
  networkBridge(uri, name) {
    const result = spawnSync("virsh", ["-c", uri, "net-info", name], { encoding: "utf8", timeout: 10_000, env: { ...process.env, LC_ALL: "C" } });
    return result.status === 0 ? /^Bridge:\s+(\S+)/m.exec(result.stdout)?.[1] : undefined;
  },
};

/**
 * The host route a lab network to be created on `cidr` collides with, if any.
 * After a deploy the lab's own network is routed too (on the bridge libvirt gave
 * it), so routes on that bridge are the lab's and do not count.
 */
export function collidingRoute(cidr: string, network: { uri: string; name: string }, host: HostNetworks): HostRoute | undefined {
  const lab = parseIpv4Net(cidr);
  const overlapping = host.routes().filter((route) => netsOverlap(lab, route.net));
  if (overlapping.length === 0) return undefined;
  const ownBridge = host.networkBridge(network.uri, network.name);
  return overlapping.find((route) => ownBridge === undefined || route.dev !== ownBridge);
}
