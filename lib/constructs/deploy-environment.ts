// What a PXE-booted machine runs to be deployed: the kernel of a customized
// image and our initramfs (scripts/steps/build-deploy-initramfs.sh). The folder name
// carries the hash of its inputs, so it is built once per image and scripts.
import * as crypto from "crypto";
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { Layout, LAYOUT_NEEDS, layoutTable } from "../config/layout";
import { CustomizedImage } from "./customized-image";
import { hostStep, scriptHash } from "./host-step";

// The script and what it names: its sourced helpers and deploy-env/ (scriptParts).
const SCRIPT = "build-deploy-initramfs.sh";

export interface DeployEnvironmentProps {
  /** The image whose kernel and drivers the deploy environment uses. */
  image: CustomizedImage;
  cacheDir: string;
  /** The layouts of the machines it deploys: it carries what each needs from the image (lib/config/layout.ts). */
  layouts?: Layout[];
}

/**
 * The build's arguments for the layouts: each layout's entry of the layout table (single always),
 * then the programs, modules and data files the layouts beyond single need from the image.
 */
export function layoutArgs(layouts: Layout[]): string[] {
  const wanted = [...new Set(layouts)].filter((layout) => layout !== "single").sort();
  const programs = [...new Set(wanted.flatMap((layout) => LAYOUT_NEEDS[layout].programs))];
  const modules = [...new Set(wanted.flatMap((layout) => LAYOUT_NEEDS[layout].modules))];
  const data = [...new Set(wanted.flatMap((layout) => LAYOUT_NEEDS[layout].data))];
  return [
    ...layoutTable(wanted).flatMap((entry) => ["--layout", entry]),
    ...programs.flatMap((program) => ["--image-program", program]),
    ...modules.flatMap((module) => ["--image-module", module]),
    ...data.flatMap((file) => ["--image-data", file]),
  ];
}

export class DeployEnvironment extends Construct {
  /** Folder holding vmlinuz and initramfs.img. */
  readonly dir: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: DeployEnvironmentProps) {
    super(scope, id);
    const layouts = layoutArgs(props.layouts ?? []);
    const inputsHash = crypto
      .createHash("sha256")
      .update([props.image.imagePath, scriptHash(SCRIPT), layouts.join(" ")].join("\n"))
      .digest("hex")
      .slice(0, 16);
    this.dir = path.join(props.cacheDir, "deploy-env", inputsHash);
    this.step = hostStep(this, "build", {
      script: SCRIPT,
      args: ["--image", props.image.imagePath, "--output-dir", this.dir, ...layouts],
      skipIfExists: path.join(this.dir, "initramfs.img"),
      triggers: { image: props.image.step.id, output_dir: this.dir },
      dependsOn: [props.image.step],
    });
  }
}
