// The image pipeline: acquire the cloud image, customize it once per profile,
// and optionally capture each customized image's partitions for bare metal.
// Every stack that needs images has its own instance (a stack must deploy
// alone); they share work through the content-addressed cache.
import { Construct } from "constructs";
import { ITerraformDependable } from "../cdk";
import { CloudImage } from "./cloud-image";
import { enforcesSecureBoot, LabConfig } from "../config/config";
import { preparations } from "../config/layout";
import { CustomizedImage } from "./customized-image";
import { PartitionCapture } from "./partition-capture";

export interface ImagePipelineProps {
  lab: LabConfig;
  /** One customized image each (duplicates are built once). */
  profiles: string[];
  /** Capture each image's partitions into lab.baremetal.outputDir/<profile>. */
  capture: boolean;
  /** What must succeed before the image is acquired. */
  dependsOn?: ITerraformDependable[];
}

export class ImagePipeline extends Construct {
  readonly cloudImage: CloudImage;
  /** By profile, in the order first given. */
  readonly images = new Map<string, CustomizedImage>();
  /** By profile; empty without capture. */
  readonly captures = new Map<string, PartitionCapture>();

  constructor(scope: Construct, props: ImagePipelineProps) {
    // Logical ids leave out a construct named "Default" (so: one pipeline per stack): the
    // steps keep the addresses they had directly under the stack, so existing labs' state
    // (and the volumes and VMs built on these steps) stays as it is.
    super(scope, "Default");
    const { lab } = props;
    this.cloudImage = new CloudImage(this, "cloud-image", {
      url: lab.image.url,
      checksums: lab.image.checksums,
      cacheDir: lab.cacheDir,
      dependsOn: props.dependsOn,
    });
    for (const profile of new Set(props.profiles)) {
      const image = new CustomizedImage(this, `image-${profile}`, {
        cloudImage: this.cloudImage,
        profilesDir: lab.profilesDir,
        profile,
        release: lab.release,
        // From the lab's config in every stack, so that all of them build (and share) the same image.
        secureBoot: enforcesSecureBoot(lab.libvirt.firmware),
        cacheDir: lab.cacheDir,
      });
      this.images.set(profile, image);
      if (!props.capture) continue;
      const layouts = lab.baremetal.machines.filter((machine) => machine.profile === profile).map((machine) => machine.layout);
      this.captures.set(profile, new PartitionCapture(this, `capture-${profile}`, { image, outputRoot: lab.baremetal.outputDir, prepared: preparations(layouts) }));
    }
  }

  /** The customized image of a profile this pipeline builds. */
  image(profile: string): CustomizedImage {
    const image = this.images.get(profile);
    if (!image) throw new Error(`the image pipeline builds no image of profile ${profile} (it builds ${[...this.images.keys()].join(", ")})`);
    return image;
  }
}
