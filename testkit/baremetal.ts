// Bare-metal test helpers: the customized minimal image (cached by the hash of
// its inputs), its captured artifacts, and blank loop-attached disks.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";
import { customizeArgs, customizedImageKey } from "../lib/constructs/customized-image";
import { layoutTable } from "../lib/config/layout";
import { readProfile } from "../lib/config/profile";
import { acquireArgs, fixtureImage } from "./fixture-image";
import { serveDirectory } from "./http-server";
import { runScript } from "./image";

const PROFILES = path.join(PROJECT_DIR, "profiles");

/**
 * restore.sh's --layouts for a run on this host: the layout table of lib/config/layout.ts
 * (every layout), written into dir, as build-deploy-initramfs.sh writes it into a deploy environment.
 */
export function layoutTableArgs(dir: string): string[] {
  const file = path.join(dir, "layouts.tab");
  fs.writeFileSync(
    file,
    layoutTable()
      .map((entry) => `${entry}\n`)
      .join(""),
  );
  return ["--layouts", file];
}

/** Debian's real generic image customized with a profile, built once per input change. */
export async function customizedTestImage(profile = "minimal"): Promise<string> {
  const cacheDir = process.env.BTW_CACHE_DIR as string;
  const fixture = fixtureImage("trixie");
  const resolved = readProfile(PROFILES, profile, "trixie");
  // The bare-metal tests' machines boot without Secure Boot.
  const requirements = { secureBoot: false };
  const key = customizedImageKey(fs.readFileSync(path.join(fixture.dir, "SHA512SUMS"), "utf8"), resolved, requirements);
  const image = path.join(cacheDir, "images", `test-${profile}-${key}.qcow2`);
  if (fs.existsSync(image)) return image;
  const server = await serveDirectory(fixture.dir);
  try {
    const base = path.join(cacheDir, "base", `test-fixture-${key}.raw`);
    const acquire = runScript("prepare-cloud-img.sh", acquireArgs(server.baseUrl, fixture, cacheDir, base));
    if (acquire.status !== 0) throw new Error(`prepare-cloud-img.sh failed:\n${acquire.stderr}`);
    const customize = runScript("customize-image.sh", customizeArgs(resolved, "trixie", base, image, requirements));
    if (customize.status !== 0) throw new Error(`customize-image.sh failed:\n${customize.stderr}`);
    return image;
  } finally {
    await server.close();
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the capture's manifest.json, as each test reads it
export function readManifest(dir: string): any {
  return JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
}

export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** A sparse blank disk file attached to a loop device with partition scanning. */
export class LoopDisk {
  readonly device: string;

  constructor(
    readonly file: string,
    sizeBytes: number,
  ) {
    fs.writeFileSync(file, "");
    fs.truncateSync(file, sizeBytes);
    this.device = execFileSync("losetup", ["-f", "--show", "-P", file], { encoding: "utf8" }).trim();
  }

  partition(number: number): string {
    const node = `${this.device}p${number}`;
    for (let i = 0; i < 25 && !fs.existsSync(node); i++) {
      spawnSync("partx", ["-a", this.device]);
      execFileSync("sleep", ["0.2"]);
    }
    return node;
  }

  /** True when no byte of the disk was written. */
  isAllZeros(): boolean {
    const size = fs.statSync(this.file).size;
    return spawnSync("cmp", ["-s", "-n", String(size), this.file, "/dev/zero"]).status === 0;
  }

  release(): void {
    spawnSync("losetup", ["-d", this.device]);
    fs.rmSync(this.file, { force: true });
  }
}

/** Mounts an ext4 partition read-only for the duration of inspect. */
export function withMounted<T>(device: string, mountPoint: string, inspect: (root: string) => T): T {
  fs.mkdirSync(mountPoint, { recursive: true });
  execFileSync("mount", ["-o", "ro", device, mountPoint]);
  try {
    return inspect(mountPoint);
  } finally {
    spawnSync("umount", [mountPoint]);
    fs.rmdirSync(mountPoint);
  }
}
