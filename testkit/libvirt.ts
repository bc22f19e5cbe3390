// Looks at libvirt directly (virsh), to check what a lab left and to clean
// up after a test that failed half-way.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";

const URI = "qemu:///system";

export function virsh(args: string[], uri = URI): string {
  return execFileSync("virsh", ["-c", uri, ...args], { encoding: "utf8" });
}

export function virshNames(kind: "list" | "net-list" | "pool-list"): string[] {
  return virsh([kind, "--all", "--name"])
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function volumeNames(pool: string): string[] {
  const result = spawnSync("virsh", ["-c", URI, "vol-list", pool], { encoding: "utf8" });
  return result.status === 0
    ? result.stdout
        .split("\n")
        .slice(2)
        .map((l) => l.trim().split(/\s+/)[0])
        .filter(Boolean)
    : [];
}

/** Whatever libvirt holds whose name starts with one of our test prefixes. */
export function leftovers(prefix: string): string[] {
  return [
    ...virshNames("list")
      .filter((n) => n.startsWith(prefix))
      .map((n) => `domain ${n}`),
    ...virshNames("net-list")
      .filter((n) => n.startsWith(prefix))
      .map((n) => `network ${n}`),
    ...virshNames("pool-list")
      .filter((n) => n.startsWith(prefix))
      .map((n) => `pool ${n}`),
  ];
}

/** Removes every domain, network and pool whose name starts with prefix. */
export function forceCleanup(prefix: string): void {
  const quiet = (args: string[]) => spawnSync("virsh", ["-c", URI, ...args], { encoding: "utf8" });
  for (const name of virshNames("list").filter((n) => n.startsWith(prefix))) {
    quiet(["destroy", name]);
    quiet(["undefine", name, "--nvram", "--remove-all-storage"]);
  }
  for (const name of virshNames("net-list").filter((n) => n.startsWith(prefix))) {
    quiet(["net-destroy", name]);
    quiet(["net-undefine", name]);
  }
  for (const name of virshNames("pool-list").filter((n) => n.startsWith(prefix))) {
    const xml = quiet(["pool-dumpxml", name]).stdout ?? "";
    const dir = /<path>([^<]+)<\/path>/.exec(xml)?.[1];
    for (const volume of volumeNames(name)) quiet(["vol-delete", volume, "--pool", name]);
    quiet(["pool-destroy", name]);
    quiet(["pool-undefine", name]);
    if (dir && dir.includes("btw")) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command inside a guest through the QEMU guest agent (of the daemon at uri). */
export function guestExec(domain: string, program: string, args: string[], uri = URI): { exitcode: number; stdout: string } {
  const start = JSON.parse(virsh(["qemu-agent-command", domain, JSON.stringify({ execute: "guest-exec", arguments: { path: program, arg: args, "capture-output": true } })], uri));
  for (let i = 0; i < 120; i++) {
    const status = JSON.parse(virsh(["qemu-agent-command", domain, JSON.stringify({ execute: "guest-exec-status", arguments: { pid: start.return.pid } })], uri));
    if (status.return.exited) {
      return { exitcode: status.return.exitcode, stdout: Buffer.from(status.return["out-data"] ?? "", "base64").toString("utf8") };
    }
    execFileSync("sleep", ["1"]);
  }
  throw new Error(`guest-exec ${program} in ${domain} did not finish`);
}

/**
 * Where a booted guest's boot went, read inside it through the guest agent: systemd's
 * kernel/initrd/userspace split, the slowest units and cloud-init's slowest stages.
 */
export function bootBreakdown(domain: string): string[] {
  const run = (program: string, args: string[], lines: number) => {
    try {
      return guestExec(domain, program, args).stdout.split("\n").filter(Boolean).slice(0, lines);
    } catch (error) {
      return [`${program} ${args.join(" ")}: ${(error as Error).message.split("\n")[0]}`];
    }
  };
  return [
    ...run("/usr/bin/systemd-analyze", ["time"], 2),
    ...run("/usr/bin/systemd-analyze", ["blame", "--no-pager"], 12),
    ...run("/usr/bin/systemd-analyze", ["critical-chain", "--no-pager", "cloud-init.target"], 25),
    ...run("/usr/bin/cloud-init", ["analyze", "blame"], 12),
  ];
}

/** The loop devices attached now, as NAME:DISKSEQ (each attachment of a name gets a new diskseq). */
export function loopAttachments(): Set<string> {
  const names = fs.readdirSync("/sys/block").filter((name) => name.startsWith("loop") && fs.existsSync(`/sys/block/${name}/loop/backing_file`));
  return new Set(names.map((name) => `${name}:${fs.readFileSync(`/sys/block/${name}/diskseq`, "utf8").trim()}`));
}

/**
 * Loop devices attached since BEFORE (loopAttachments) whose backing file no longer
 * has a path ("/"): a file of a mount that went with a killed process's mount
 * namespace, which hostLeftovers cannot tell by its folder.
 */
export function orphanLoopsSince(before: Set<string>): string[] {
  return [...loopAttachments()]
    .filter((attachment) => !before.has(attachment))
    .filter((attachment) => fs.readFileSync(`/sys/block/${attachment.split(":")[0]}/loop/backing_file`, "utf8").trim() === "/");
}

/**
 * Loop devices backed by files under ROOTS and mounts under ROOTS (the folders a
 * test made): tests must leave none, and judge nothing another program made.
 */
export function hostLeftovers(...roots: string[]): string[] {
  if (roots.length === 0) throw new Error("hostLeftovers needs the folders the test made");
  const under = (file: string) => roots.some((root) => file === root || file.startsWith(root.endsWith("/") ? root : `${root}/`));
  const loops = execFileSync("losetup", ["--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.split(" "))
    .filter(([name, file]) => name && file && under(file.replace(/\\x20/g, " ").replace(/ \(deleted\)$/, "")))
    .map(([name, file]) => `loop ${name} ${file}`);
  const mounts = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point) => point && under(point.replace(/\\040/g, " ")))
    .map((point) => `mount ${point}`);
  return [...loops, ...mounts];
}

/** True when the host's libvirtd answers on qemu:///system. */
export function libvirtdAnswers(): boolean {
  return spawnSync("virsh", ["-c", URI, "version"], { stdio: "ignore" }).status === 0;
}

/**
 * Stops the host's libvirtd, leaves it down for downSeconds, and starts it again as
 * scripts/host/setup-host.sh does on a host without systemd (under systemd: its unit),
 * returning once it answers. Domains run on meanwhile.
 */
export function restartLibvirtd(downSeconds: number): void {
  const systemd = spawnSync("systemctl", ["is-active", "--quiet", "libvirtd"]).status === 0;
  execFileSync("sh", [
    "-c",
    systemd
      ? `systemctl stop libvirtd libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket && sleep ${downSeconds} && systemctl start libvirtd`
      : `pkill -x libvirtd; while pgrep -x libvirtd >/dev/null; do sleep 0.1; done; sleep ${downSeconds}; libvirtd -d </dev/null >/dev/null 2>&1`,
  ]);
  for (let tries = 0; !libvirtdAnswers(); tries++) {
    if (tries >= 100) throw new Error("libvirtd did not answer again after its restart");
    execFileSync("sleep", ["0.2"]);
  }
}
