// One server and K receivers in network namespaces of this host, joined by a
// bridge in a namespace of its own (a switch): what a fleet's restore looks
// like to the server, without VMs. The server's link can get a rate (tc tbf, as
// a real uplink) and the receivers a random loss (iptables statistic: this
// kernel has no netem). Names carry this process's pid, so two runs do not meet;
// release() removes every namespace (and with them their links and rules).
import { execFileSync, spawnSync } from "child_process";

export class FanOutNet {
  readonly serverAddress = "10.213.77.1";
  private readonly prefix: string;
  private made: string[] = [];

  constructor(readonly receivers: number) {
    if (receivers < 1 || receivers > 100) throw new Error(`FanOutNet: 1 to 100 receivers, not ${receivers}`);
    this.prefix = `btwfo${process.pid % 100000}`;
  }

  get serverNs(): string {
    return `${this.prefix}s`;
  }

  private get switchNs(): string {
    return `${this.prefix}w`;
  }

  receiverNs(index: number): string {
    return `${this.prefix}r${index}`;
  }

  /** Every namespace it makes (the switch's too). */
  get namespaces(): string[] {
    return [this.switchNs, this.serverNs, ...Array.from({ length: this.receivers }, (_, i) => this.receiverNs(i + 1))];
  }

  receiverAddress(index: number): string {
    return `10.213.77.${10 + index}`;
  }

  /** The namespaces, links and addresses; multicast flooded by the switch (no snooping), routed out of each host's one link. */
  create(): void {
    this.ns(this.switchNs);
    this.run(this.switchNs, ["ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
    this.run(this.switchNs, ["ip", "link", "set", "br0", "up"]);
    this.attach(this.serverNs, "s0", "srv", this.serverAddress);
    for (let i = 1; i <= this.receivers; i++) this.attach(this.receiverNs(i), "r0", `r${i}`, this.receiverAddress(i));
  }

  /** The server's outgoing rate, as an uplink of that speed (tc tbf), e.g. "1gbit". */
  limitServer(rate: string): void {
    this.run(this.serverNs, ["tc", "qdisc", "replace", "dev", "s0", "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"]);
  }

  /** Every receiver drops this share of what reaches it (0 removes the rule). */
  receiverLoss(probability: number): void {
    for (let i = 1; i <= this.receivers; i++) {
      const ns = this.receiverNs(i);
      spawnSync("ip", ["netns", "exec", ns, "iptables", "-F", "INPUT"]);
      if (probability > 0) {
        this.run(ns, ["iptables", "-A", "INPUT", "-i", "r0", "-m", "statistic", "--mode", "random", "--probability", String(probability), "-j", "DROP"]);
      }
    }
  }

  /** Bytes the server has sent on its link so far. */
  serverTxBytes(): number {
    return Number(execFileSync("ip", ["netns", "exec", this.serverNs, "cat", "/sys/class/net/s0/statistics/tx_bytes"], { encoding: "utf8" }).trim());
  }

  /** The command line that runs COMMAND in namespace NS. */
  inNs(ns: string, command: string[]): string[] {
    return ["ip", "netns", "exec", ns, ...command];
  }

  release(): void {
    for (const ns of this.made.reverse()) spawnSync("ip", ["netns", "del", ns]);
    this.made = [];
  }

  /** Namespace NS with a link NAME to the switch (the switch's end: PEER), ADDRESS/24 on it, and multicast routed out of it. */
  private attach(ns: string, name: string, peer: string, address: string): void {
    this.ns(ns);
    execFileSync("ip", ["link", "add", name, "netns", ns, "type", "veth", "peer", "name", peer, "netns", this.switchNs]);
    this.run(this.switchNs, ["ip", "link", "set", peer, "master", "br0", "up"]);
    this.run(ns, ["ip", "addr", "add", `${address}/24`, "dev", name]);
    this.run(ns, ["ip", "link", "set", name, "up"]);
    this.run(ns, ["ip", "link", "set", "lo", "up"]);
    this.run(ns, ["ip", "route", "add", "224.0.0.0/4", "dev", name]);
  }

  private ns(name: string): void {
    execFileSync("ip", ["netns", "add", name]);
    this.made.push(name);
  }

  private run(ns: string, command: string[]): void {
    execFileSync("ip", this.inNs(ns, command).slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  }
}
