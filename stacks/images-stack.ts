// The images alone, for CI's image job (`cdktf deploy images`, then it
// publishes the files the outputs name): the image pipeline of the lab's
// default profile and every profile its VMs boot. No partition capture: the
// capture folders are not content-addressed, and the host's PXE server serves them.
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack } from "../lib/cdk";
import { LabConfig } from "../lib/config/config";
import { ImagePipeline } from "../lib/constructs/image-pipeline";
import { terraformLiterals } from "../lib/terraform-string";

export interface ImagesStackOptions {
  /** The profiles to build instead of the lab's (BTW_PROFILES). */
  profiles?: string[];
}

export class ImagesStack extends TerraformStack {
  constructor(scope: Construct, id: string, lab: LabConfig, options: ImagesStackOptions = {}) {
    super(scope, id);
    const profiles = options.profiles ?? [lab.profile, ...lab.vms.map((vm) => vm.profile)];
    const { cloudImage, images } = new ImagePipeline(this, { lab, profiles, capture: false });
    new TerraformOutput(this, "base-image", {
      value: terraformLiterals({ url: lab.image.url, sha512: cloudImage.sha512 ?? "", path: cloudImage.basePath }),
    });
    // Per profile, its customized qcow2: the file CI publishes once `cdktf deploy images` succeeded.
    new TerraformOutput(this, "images", {
      value: terraformLiterals(Object.fromEntries([...images].map(([profile, image]) => [profile, image.imagePath]))),
    });
  }
}
