// A fresh build host as a root file system: Debian minbase plus what
// scripts/host/install-packages.sh installed from host-requirements.txt, built by
// __tests__/fixtures/host-root.sh and cached by what it is made from; and
// check-requirements.sh run inside it, as setup-host.sh runs it on a host.
import { execFileSync, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";

export type HostRelease = "bookworm" | "trixie";

export interface HostRoot {
  release: HostRelease;
  /** The installed root. */
  root: string;
  /** What /usr/bin and /usr/sbin of the clean minbase root held, before the install. */
  minbaseCommands: Set<string>;
}

/** The release's host root, built when the cache does not hold it (minutes), else at once. */
export function hostRoot(release: HostRelease): HostRoot {
  const script = path.join(PROJECT_DIR, "__tests__", "fixtures", "host-root.sh");
  // A root that cannot be made fails the test with the script's message; it never skips.
  const dir = execFileSync("sh", [script, "--release", release, "--cache-dir", process.env.BTW_CACHE_DIR as string], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
    timeout: 1_800_000,
  }).trim();
  const minbaseCommands = new Set(fs.readFileSync(path.join(dir, "minbase-commands"), "utf8").split("\n").filter(Boolean));
  return { release, root: path.join(dir, "root"), minbaseCommands };
}

/**
 * check-requirements.sh of this checkout run inside ROOT (as root's login PATH would find
 * things), against REQUIREMENTS (text) or the checkout's host-requirements.txt. The root
 * is the lower layer of an overlay in a mount namespace of the check's own: the cached
 * root is never written, and the mount ends with the check, however it ends.
 */
export function checkRequirements(root: string, requirements?: string): SpawnSyncReturns<string> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-host-check-"));
  try {
    const btw = path.join(work, "upper", "tmp", "btw");
    fs.mkdirSync(path.join(btw, "scripts", "steps", "lib"), { recursive: true });
    fs.mkdirSync(path.join(work, "work"));
    fs.mkdirSync(path.join(work, "merged"));
    fs.cpSync(path.join(PROJECT_DIR, "scripts", "host"), path.join(btw, "scripts", "host"), { recursive: true });
    fs.copyFileSync(path.join(PROJECT_DIR, "scripts", "steps", "lib", "messages.sh"), path.join(btw, "scripts", "steps", "lib", "messages.sh"));
    const args = requirements === undefined ? [] : ["--requirements", "/tmp/btw/requirements.txt"];
    if (requirements !== undefined) fs.writeFileSync(path.join(btw, "requirements.txt"), requirements);
    const inRoot =
      'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/merged" && shift 2 && ' +
      'exec chroot "$0" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ' +
      'sh /tmp/btw/scripts/host/check-requirements.sh "$@"';
    return spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", inRoot, path.join(work, "merged"), root, work, ...args], {
      encoding: "utf8",
      timeout: 120_000,
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
