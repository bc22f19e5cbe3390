// Which image "latest" is today: read at synth time from the published
// SHA512SUMS, so a new Debian image shows in `cdktf diff` as a changed checksum
// (and rebuilds what depends on it) instead of being missed or slipping in.
// The only reader of SHA512SUMS: the acquire step is handed the sha512.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface ImageChecksum {
  /** The sha512 the plan is made for, or undefined when it cannot be known at synth (then the image cannot be acquired). */
  sha512?: string;
  /** Why the checksum is not fresh from SHA512SUMS (printed as a warning). */
  warning?: string;
  /** Set when there is no checksum at all: SHA512SUMS could not be read (the URL and the error) and nothing was acquired before. */
  unreadable?: string;
}

/** The file name an image URL ends in (query and fragment left out). */
export function imageFileName(url: string): string {
  return path.basename(url.replace(/[?#].*$/, ""));
}

/** The sha512 that a SHA512SUMS text gives for file ("<sha512>  <file>" or "<sha512> *<file>"). */
export function checksumFor(sums: string, file: string): string | undefined {
  for (const line of sums.split("\n")) {
    const [sum, name] = line.trim().split(/\s+/);
    if (name === file || name === `*${file}`) return /^[0-9a-f]{128}$/.test(sum) ? sum : undefined;
  }
  return undefined;
}

/** The sha512 of the image prepare-cloud-img.sh last linked at link, as it wrote it beside the link (link.json). */
export function acquiredChecksum(link: string): string | undefined {
  let sum: unknown;
  try {
    sum = (JSON.parse(fs.readFileSync(`${link}.json`, "utf8")) as { sha512?: unknown }).sha512;
  } catch {
    return undefined;
  }
  return typeof sum === "string" && /^[0-9a-f]{128}$/.test(sum) && fs.existsSync(link) ? sum : undefined;
}

export class ImageChecksumError extends Error {}

/**
 * A deploy cannot acquire an image whose checksum it does not know (images are only accepted verified): it
 * stops at synth, naming SHA512SUMS and the network's error, before anything is created. Plans go on, with the warning.
 */
export function requireChecksumForDeploy(checksum: ImageChecksum, checksumsKey: string): void {
  if (checksum.unreadable)
    throw new ImageChecksumError(
      `cannot read ${checksum.unreadable}, so the image's sha512 is unknown and nothing was acquired before: ` +
        `a deploy needs it (images are only accepted verified). Check this host's network or proxy, or ${checksumsKey}; nothing was changed`,
    );
}

/**
 * Reads SHA512SUMS (15 s at most). When it cannot be read, falls back to the image
 * acquired before through the same link, with a warning.
 */
export function resolveImageChecksum(url: string, checksums: string, link: string): ImageChecksum {
  const file = imageFileName(url);
  const fetch = spawnSync("curl", ["-fsSL", "--max-time", "15", checksums], { encoding: "utf8" });
  if (fetch.status !== 0) {
    const reason = (fetch.stderr || fetch.error?.message || "").trim().split("\n").pop();
    const previous = acquiredChecksum(link);
    return previous
      ? { sha512: previous, warning: `cannot read ${checksums} (${reason}): planning with the image acquired before` }
      : { warning: `cannot read ${checksums} (${reason}): the image cannot be acquired until it can be read`, unreadable: `${checksums} (${reason})` };
  }
  const sha512 = checksumFor(fetch.stdout, file);
  if (!sha512) throw new ImageChecksumError(`image.checksums ${checksums} has no sha512 line for ${file} (image.url ${url}): fix image.url or image.checksums`);
  return { sha512 };
}
