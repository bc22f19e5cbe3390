// Bare-metal artifacts of a customized image: partclone images of its
// partitions, its partition table and boot code, and a manifest
// (scripts/steps/capture-partitions.sh), with what its machines' layouts need
// prepared. Captured again only when the image or those needs changed.
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { Preparation } from "../config/layout";
import { CustomizedImage } from "./customized-image";
import { hostStep } from "./host-step";

export interface PartitionCaptureProps {
  image: CustomizedImage;
  /** Folder holding one capture folder per profile. */
  outputRoot: string;
  /** What the layouts of the machines that boot it need prepared (lib/config/layout.ts). */
  prepared: Preparation[];
}

export class PartitionCapture extends Construct {
  /** Folder holding manifest.json and the artifacts it names. */
  readonly outputDir: string;
  readonly manifestPath: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: PartitionCaptureProps) {
    super(scope, id);
    const profile = props.image.profile.name;
    this.outputDir = path.join(props.outputRoot, profile);
    this.manifestPath = path.join(this.outputDir, "manifest.json");
    this.step = hostStep(this, "capture", {
      script: "capture-partitions.sh",
      args: ["--image", props.image.imagePath, "--output-dir", this.outputDir, "--profile", profile, ...props.prepared.flatMap((name) => ["--prepare", name])],
      triggers: { image: props.image.step.id, image_path: props.image.imagePath, output_dir: this.outputDir, prepared: props.prepared.join(" ") },
      dependsOn: [props.image.step],
    });
  }
}
