// What a PXE-booted machine runs to be deployed: the kernel of a customized
// image and our initramfs (scripts/steps/build-deploy-initramfs.sh). The folder name
// carries the hash of its inputs, so it is built once per image and scripts.
import * as crypto from "crypto";
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { CustomizedImage } from "./customized-image";
import { hostStep, scriptHash } from "./host-step";

// The script and what it names: its sourced helpers and deploy-env/ (scriptParts).
const SCRIPT = "build-deploy-initramfs.sh";

export interface DeployEnvironmentProps {
  /** The image whose kernel and drivers the deploy environment uses. */
  image: CustomizedImage;
  cacheDir: string;
}

export class DeployEnvironment extends Construct {
  /** Folder holding vmlinuz and initramfs.img. */
  readonly dir: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: DeployEnvironmentProps) {
    super(scope, id);
    const inputsHash = crypto
      .createHash("sha256")
      .update([props.image.imagePath, scriptHash(SCRIPT)].join("\n"))
      .digest("hex")
      .slice(0, 16);
    this.dir = path.join(props.cacheDir, "deploy-env", inputsHash);
    this.step = hostStep(this, "build", {
      script: SCRIPT,
      args: ["--image", props.image.imagePath, "--output-dir", this.dir],
      skipIfExists: path.join(this.dir, "initramfs.img"),
      triggers: { image: props.image.step.id, output_dir: this.dir },
      dependsOn: [props.image.step],
    });
  }
}
