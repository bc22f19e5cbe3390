// The stand-in for Debian's generic cloud image, built by
// scripts/build-test-image.sh and cached between runs.
import { execFileSync } from "child_process";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config";

export interface FixtureImage {
  dir: string;
  archiveName: string;
}

export function fixtureImage(release: "trixie" | "bookworm" = "trixie"): FixtureImage {
  const cacheDir = process.env.BTW_CACHE_DIR as string;
  const dir = path.join(cacheDir, "fixtures", release);
  execFileSync("sh", [path.join(PROJECT_DIR, "scripts", "build-test-image.sh"), "--release", release, "--output-dir", dir], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 1_200_000,
  });
  const number = release === "trixie" ? 13 : 12;
  return { dir, archiveName: `debian-${number}-generic-amd64.tar.xz` };
}
