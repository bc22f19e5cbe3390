// A second libvirt daemon on this machine, standing in for another hypervisor host: its own
// socket and its own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
// /var/log/libvirt (private bind mounts in a mount namespace of its own, so it never sees
// or touches the main daemon's objects), its own network namespace, QEMU writing its own logs (no virtlogd), no
// security driver (nothing written to the host's AppArmor profiles). stop() destroys what
// it still runs, ends it and removes its folder.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface SecondLibvirtd {
  /** Its folder: root/ holds what it sees as its system folders, sock/ its sockets. */
  dir: string;
  /** The read-write socket, outside the private folders so clients in the host's namespace reach it. */
  socket: string;
  /** qemu+unix:///system?socket=<socket> */
  uri: string;
  pidFile: string;
  /** Where the daemon's /var/lib/libvirt, /run/libvirt, ... are seen from the host. */
  private(systemPath: string): string;
  virsh(args: string[]): string;
  /** Domains, networks and pools it holds. */
  objects(): string[];
  stop(): void;
}

const PRIVATE = ["/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startSecondLibvirtd(name: string): Promise<SecondLibvirtd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-libvirtd-`));
  fs.chmodSync(dir, 0o755);
  const root = path.join(dir, "root");
  const sockDir = path.join(dir, "sock");
  const privatePath = (systemPath: string) => path.join(root, systemPath);
  for (const folder of PRIVATE) fs.mkdirSync(privatePath(folder), { recursive: true });
  fs.mkdirSync(path.join(privatePath("/var/log/libvirt"), "qemu"));
  fs.mkdirSync(sockDir, { mode: 0o700 });
  // The default network filters, nothing of the main daemon's domains, networks or pools.
  fs.cpSync("/etc/libvirt/nwfilter", path.join(privatePath("/etc/libvirt"), "nwfilter"), { recursive: true });
  const conf = path.join(privatePath("/etc/libvirt"), "libvirtd.conf");
  fs.writeFileSync(
    conf,
    [
      `unix_sock_dir = "${sockDir}"`,
      `unix_sock_ro_perms = "0700"`,
      `unix_sock_rw_perms = "0700"`,
      `auth_unix_ro = "none"`,
      `auth_unix_rw = "none"`,
      `log_outputs = "3:file:${path.join(dir, "libvirtd.log")}"`,
      "",
    ].join("\n"),
  );
  fs.writeFileSync(path.join(privatePath("/etc/libvirt"), "qemu.conf"), ['stdio_handler = "file"', 'security_driver = "none"', ""].join("\n"));
  const pidFile = path.join(dir, "libvirtd.pid");
  const socket = path.join(sockDir, "libvirt-sock");
  const uri = `qemu+unix:///system?socket=${socket}`;
  const mounts = PRIVATE.map((folder) => `mount --bind '${privatePath(folder)}' '${folder}'`).join(" && ");
  const out = fs.openSync(path.join(dir, "daemon.out"), "a");
  // A network namespace of its own too, as another machine has: its bridges, dnsmasq and firewall rules never
  // meet the host's, and go with it when its last process ends.
  const child = spawn("unshare", ["--mount", "--net", "--propagation", "private", "sh", "-c", `ip link set lo up && ${mounts} && exec libvirtd -f '${conf}' -p '${pidFile}'`], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  fs.closeSync(out);

  const virsh = (args: string[]) => execFileSync("virsh", ["-c", uri, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const names = (kind: string) =>
    virsh([kind, "--all", "--name"])
      .split("\n")
      .map((s) => s.trim())
      .filter(Boolean);
  const daemonPid = () => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, "utf8").trim()) : undefined);
  const alive = (pid: number) => spawnSync("kill", ["-0", String(pid)]).status === 0;

  const stop = () => {
    const pid = daemonPid();
    if (pid && alive(pid)) {
      // QEMU and dnsmasq outlive the daemon: end them through it first.
      const quiet = (args: string[]) => spawnSync("virsh", ["-c", uri, ...args], { stdio: "ignore" });
      try {
        for (const domain of names("list")) quiet(["destroy", domain]);
        for (const network of names("net-list")) quiet(["net-destroy", network]);
      } catch {
        // not answering: ending it is all that is left
      }
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 100 && alive(pid); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  for (let i = 0; i < 120; i++) {
    if (fs.existsSync(socket) && spawnSync("virsh", ["-c", uri, "version"], { stdio: "ignore" }).status === 0) {
      return {
        dir,
        socket,
        uri,
        pidFile,
        private: privatePath,
        virsh,
        objects: () => [...names("list").map((n) => `domain ${n}`), ...names("net-list").map((n) => `network ${n}`), ...names("pool-list").map((n) => `pool ${n}`)],
        stop,
      };
    }
    if (child.exitCode !== null) break;
    await sleep(500);
  }
  const log = ["daemon.out", "libvirtd.log"]
    .map((file) => path.join(dir, file))
    .filter(fs.existsSync)
    .map((file) => fs.readFileSync(file, "utf8").slice(-2000));
  stop();
  throw new Error(`the second libvirtd did not answer on ${socket}:\n${log.join("\n")}`);
}
