// An OpenSSH server for tests, standing in for a remote hypervisor's: on a free loopback
// port, with a host key of its own, letting in root only with a client key the test made,
// listed in an authorized-keys file of its own (AuthorizedKeysFile): nothing of root's
// ~/.ssh is read or written. stop() ends it and removes its folder.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { freePort } from "./free-port";

export interface SshServer {
  port: number;
  /** /run/sshd when this server made it (a host whose sshd never ran), for testkit/held.ts. */
  madePaths: string[];
  dir: string;
  /** The client's private key (keyfile= in a qemu+ssh URI). */
  clientKey: string;
  /** A known_hosts file holding this server's host key for [127.0.0.1]:port. */
  knownHosts: string;
  pidFile: string;
  stop(): void;
}

const PRIVSEP_DIR = "/run/sshd";

export async function startSshd(name: string): Promise<SshServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-sshd-`));
  const hostKey = path.join(dir, "host_ed25519");
  const clientKey = path.join(dir, "client_ed25519");
  for (const key of [hostKey, clientKey]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${name}-test`, "-f", key]);
  const authorizedKeys = path.join(dir, "authorized_keys");
  fs.copyFileSync(`${clientKey}.pub`, authorizedKeys);
  fs.chmodSync(authorizedKeys, 0o600);
  const port = await freePort();
  const knownHosts = path.join(dir, "known_hosts");
  const [type, key] = fs.readFileSync(`${hostKey}.pub`, "utf8").split(" ");
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${type} ${key}\n`);
  const pidFile = path.join(dir, "sshd.pid");
  const config = path.join(dir, "sshd_config");
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      // The test's folder is under /tmp, which StrictModes refuses as a home for keys.
      "StrictModes no",
      "AllowStreamLocalForwarding yes",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  // sshd needs its privilege separation folder; a host whose sshd never ran has none (systemd makes it).
  const madePrivsep = !fs.existsSync(PRIVSEP_DIR);
  if (madePrivsep) fs.mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
  // Without -D, sshd forks once it listens: when this returns, it accepts connections.
  const started = spawnSync("/usr/sbin/sshd", ["-f", config, "-E", path.join(dir, "sshd.log")], { encoding: "utf8" });
  const stop = () => {
    if (fs.existsSync(pidFile)) spawnSync("kill", [fs.readFileSync(pidFile, "utf8").trim()]);
    if (madePrivsep) fs.rmSync(PRIVSEP_DIR, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  if (started.status !== 0) {
    const log = fs.existsSync(path.join(dir, "sshd.log")) ? fs.readFileSync(path.join(dir, "sshd.log"), "utf8") : "";
    stop();
    throw new Error(`sshd did not start: ${started.stderr}${log}`);
  }
  return { port, dir, clientKey, knownHosts, pidFile, madePaths: madePrivsep ? [PRIVSEP_DIR] : [], stop };
}
