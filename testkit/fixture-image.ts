// The end-to-end tests' input: Debian's real generic cloud image, built with
// Debian's own recipe (or downloaded at a pinned date) by
// __tests__/fixtures/debian-image.sh and cached by what it is made from.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";
import { checksumFor } from "../lib/config/image-release";
import { runScript } from "./image";

export interface FixtureImage {
  dir: string;
  archiveName: string;
  /** The archive's sha512, from the fixture's SHA512SUMS (what prepare-cloud-img.sh is handed). */
  sha512: string;
}

export function fixtureImage(release: "trixie" | "bookworm" = "trixie"): FixtureImage {
  const cacheDir = process.env.BTW_CACHE_DIR as string;
  const script = path.join(PROJECT_DIR, "__tests__", "fixtures", "debian-image.sh");
  // A missing fixture fails the test with the script's message; it never skips.
  const dir = execFileSync("sh", [script, "--release", release, "--cache-dir", cacheDir], {
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
    timeout: 1_500_000,
  }).trim();
  const archiveName = `debian-${release === "trixie" ? 13 : 12}-generic-amd64.tar.xz`;
  const sha512 = checksumFor(fs.readFileSync(path.join(dir, "SHA512SUMS"), "utf8"), archiveName);
  if (!sha512) throw new Error(`${dir}/SHA512SUMS has no line for ${archiveName}`);
  return { dir, archiveName, sha512 };
}

/**
 * The fixture acquired (by file:// URL) as the lab would, into the shared cache (acquired
 * once per fixture, whichever test asks first), linked as work/base.raw (a raw disk); returns the link.
 */
export function acquireFixtureBase(release: "trixie" | "bookworm", work: string): string {
  const fixture = fixtureImage(release);
  const base = path.join(work, "base.raw");
  const acquire = runScript("prepare-cloud-img.sh", acquireArgs(`file://${fixture.dir}`, fixture, process.env.BTW_CACHE_DIR as string, base));
  if (acquire.status !== 0) throw new Error(`prepare-cloud-img.sh failed:\n${acquire.stderr.slice(-3000)}`);
  return base;
}

/** prepare-cloud-img.sh's arguments for FIXTURE served at BASE_URL (its folder: the archive and SHA512SUMS), into CACHE, linked at LINK. */
export function acquireArgs(baseUrl: string, fixture: FixtureImage, cache: string, link: string): string[] {
  return ["--url", `${baseUrl}/${fixture.archiveName}`, "--sha512", fixture.sha512, "--checksums", `${baseUrl}/SHA512SUMS`, "--cache-dir", cache, "--link", link];
}
