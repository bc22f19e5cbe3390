// Acquire: download the Debian cloud image, verify its SHA512 and unpack its raw
// disk in one pass, cached by checksum (scripts/steps/prepare-cloud-img.sh). The checksum
// is read at synth time (lib/config/image-release.ts) and handed to the script, so
// the plan names the image and the deploy fetches exactly that one.
import * as crypto from "crypto";
import * as path from "path";
import { Construct, IConstruct } from "constructs";
import { ITerraformDependable, TerraformData } from "../cdk";
import { hostStep, scriptCommand, shellQuote } from "./host-step";
import { ImageChecksum, requireChecksumForDeploy, resolveImageChecksum } from "../config/image-release";
import { synthForDeploy } from "../cdktf-command";

export interface CloudImageProps {
  url: string;
  checksums: string;
  cacheDir: string;
  dependsOn?: ITerraformDependable[];
}

// Every stack of an app asks; SHA512SUMS is read (and a warning printed) once per app.
const resolvedPerApp = new WeakMap<IConstruct, Map<string, ImageChecksum>>();

export class CloudImage extends Construct {
  /** A stable link to the cached raw disk (sparse) of the image the URL names: read it as -f raw. */
  readonly basePath: string;
  /** The sha512 of the image this plan is for, when SHA512SUMS (or an earlier acquire) tells. */
  readonly sha512?: string;
  /** What names the image's content: its sha512, or the URL when that is all there is. */
  readonly contentKey: string;
  readonly step: TerraformData;
  /**
   * Acquires the image again when its cached file is gone (a purge by another lab
   * sharing the cache): steps that read basePath run it first.
   */
  readonly ensureCommand: string;

  constructor(scope: Construct, id: string, props: CloudImageProps) {
    super(scope, id);
    const urlKey = crypto.createHash("sha256").update(`${props.url}\n${props.checksums}`).digest("hex").slice(0, 16);
    this.basePath = path.join(props.cacheDir, "base", `${path.basename(props.url).replace(/\.(tar\.xz|qcow2|raw)$/, "")}-${urlKey}.raw`);
    const key = `${props.url}\n${props.checksums}`;
    if (!resolvedPerApp.has(this.node.root)) resolvedPerApp.set(this.node.root, new Map());
    const resolved = resolvedPerApp.get(this.node.root)!;
    if (!resolved.has(key)) {
      const checksum = resolveImageChecksum(props.url, props.checksums, this.basePath);
      if (synthForDeploy()) requireChecksumForDeploy(checksum, "image.checksums");
      if (checksum.warning) process.stderr.write(`btw-img: warning: ${checksum.warning}\n`);
      resolved.set(key, checksum);
    }
    this.sha512 = resolved.get(key)!.sha512;
    this.contentKey = this.sha512 ?? this.basePath;
    const args = ["--url", props.url, "--checksums", props.checksums, ...(this.sha512 ? ["--sha512", this.sha512] : []), "--cache-dir", props.cacheDir, "--link", this.basePath];
    this.ensureCommand = `{ test -e ${shellQuote(this.basePath)} || ${scriptCommand("prepare-cloud-img.sh", args)}; }`;
    this.step = hostStep(this, "acquire", {
      script: "prepare-cloud-img.sh",
      args,
      // A new image behind the same URL ("latest") changes sha512: the diff shows it, apply fetches it.
      triggers: { url: props.url, checksums: props.checksums, sha512: this.sha512 ?? "" },
      dependsOn: props.dependsOn,
    });
  }
}
