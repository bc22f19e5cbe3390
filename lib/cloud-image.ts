// Acquire: download the Debian cloud image, verify its SHA512, convert it to
// qcow2 and cache it by checksum (scripts/prepare-cloud-img.sh).
import * as crypto from "crypto";
import * as path from "path";
import { Construct } from "constructs";
import { ITerraformDependable, TerraformData } from "./cdk";
import { hostStep } from "./host-step";

export interface CloudImageProps {
  url: string;
  checksums: string;
  cacheDir: string;
  dependsOn?: ITerraformDependable[];
}

export class CloudImage extends Construct {
  /** A stable link to the cached qcow2 of the image the URL names. */
  readonly basePath: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: CloudImageProps) {
    super(scope, id);
    const urlKey = crypto.createHash("sha256").update(`${props.url}\n${props.checksums}`).digest("hex").slice(0, 16);
    this.basePath = path.join(props.cacheDir, "base", `${path.basename(props.url).replace(/\.(tar\.xz|qcow2|raw)$/, "")}-${urlKey}.qcow2`);
    this.step = hostStep(this, "acquire", {
      script: "prepare-cloud-img.sh",
      args: ["--url", props.url, "--checksums", props.checksums, "--cache-dir", props.cacheDir, "--link", this.basePath],
      triggers: { url: props.url, checksums: props.checksums },
      dependsOn: props.dependsOn,
    });
  }
}
