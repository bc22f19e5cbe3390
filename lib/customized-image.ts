// Customize offline: apply a profile to the cloud image in a chroot
// (scripts/customize-image.sh). The output path carries the hash of every
// input (the base image by content, not URL), so an unchanged profile on an
// unchanged image is never rebuilt.
import * as crypto from "crypto";
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "./cdk";
import { CloudImage } from "./cloud-image";
import { hostStep, scriptHash } from "./host-step";
import { ProfileInfo, readProfile } from "./profile";

export interface CustomizedImageProps {
  cloudImage: CloudImage;
  profilesDir: string;
  profile: string;
  cacheDir: string;
}

export class CustomizedImage extends Construct {
  readonly imagePath: string;
  readonly profile: ProfileInfo;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: CustomizedImageProps) {
    super(scope, id);
    this.profile = readProfile(props.profilesDir, props.profile);
    const inputsHash = crypto
      .createHash("sha256")
      .update([props.cloudImage.contentKey, this.profile.contentHash, scriptHash("customize-image.sh")].join("\n"))
      .digest("hex")
      .slice(0, 16);
    this.imagePath = path.join(props.cacheDir, "images", `${props.profile}-${inputsHash}.qcow2`);
    this.step = hostStep(this, "customize", {
      script: "customize-image.sh",
      args: ["--base", props.cloudImage.basePath, "--profiles-dir", props.profilesDir, "--profile", props.profile, "--output", this.imagePath],
      // The image is a pure function of its inputs: reuse it when it is already built.
      skipIfExists: this.imagePath,
      before: props.cloudImage.ensureCommand,
      triggers: {
        base_image: props.cloudImage.step.id,
        profile: props.profile,
        profile_files: this.profile.fileHashes,
      },
      dependsOn: [props.cloudImage.step],
    });
  }
}
