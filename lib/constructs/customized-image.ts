// Customize offline: apply a profile to the cloud image in a chroot
// (scripts/steps/customize-image.sh). The profile is resolved here (lib/config/profile.ts);
// the script gets its layers and packages as arguments. The output path carries
// the hash of every input (the base image by content, not URL), so an unchanged
// profile on an unchanged image is never rebuilt.
import * as crypto from "crypto";
import * as path from "path";
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { CloudImage } from "./cloud-image";
import { hostStep, scriptHash } from "./host-step";
import { ProfileInfo, readProfile } from "../config/profile";

const SCRIPT = "customize-image.sh";

/** What the image must satisfy beyond its profile; it names the image too (see customizedImageKey). */
export interface ImageRequirements {
  /** The image must boot with Secure Boot enforced: anything unsigned in it fails the build. */
  secureBoot: boolean;
}

export interface CustomizedImageProps extends ImageRequirements {
  cloudImage: CloudImage;
  profilesDir: string;
  profile: string;
  /** The lab's Debian codename: the profile must support it, the image must be it. */
  release: string;
  cacheDir: string;
}

/** The arguments of scripts/steps/customize-image.sh that build `profile` (resolved for `release`) from `base` into `output`. */
export function customizeArgs(profile: ProfileInfo, release: string, base: string, output: string, requirements: ImageRequirements): string[] {
  return [
    "--base",
    base,
    "--release",
    release,
    ...profile.layers.flatMap((layer) => ["--layer", layer]),
    ...profile.packageLines.flatMap((pkg) => ["--package", `${pkg.name} ${pkg.origin}`]),
    ...(requirements.secureBoot ? ["--secure-boot"] : []),
    "--output",
    output,
  ];
}

/**
 * The steps customize-image.sh builds as cached layers, in order, named as the script names them
 * (scripts/steps/customize/layers.sh): "packages", then "PROFILE/files", "PROFILE/ansible" and
 * "PROFILE/commands.d/NN-name.sh" of each profile of the chain, parent first.
 */
export function customizationLayers(profile: ProfileInfo): string[] {
  const files = Object.keys(profile.fileHashes);
  const has = (prefix: string) => files.some((file) => file.startsWith(prefix));
  const packages = profile.packageLines.length > 0 || profile.chain.some((member) => has(`${member}/apt-sources.d/`));
  return [
    ...(packages ? ["packages"] : []),
    ...profile.chain.filter((member) => has(`${member}/files/`)).map((member) => `${member}/files`),
    ...profile.chain.filter((member) => files.includes(`${member}/ansible/playbook.yml`)).map((member) => `${member}/ansible`),
    ...profile.chain.flatMap((member) => files.filter((file) => /^[^/]+\/commands\.d\/[^/]+\.sh$/.test(file) && file.startsWith(`${member}/`)).sort()),
  ];
}

/**
 * What names a customized image: its base image's content, the profile's files, the scripts that apply it
 * and what it was checked for (an image built without the Secure Boot check must not serve a lab that needs it).
 */
export function customizedImageKey(baseContentKey: string, profile: ProfileInfo, requirements: ImageRequirements): string {
  return crypto
    .createHash("sha256")
    .update([baseContentKey, profile.contentHash, scriptHash(SCRIPT), `secure-boot=${requirements.secureBoot}`].join("\n"))
    .digest("hex")
    .slice(0, 16);
}

export class CustomizedImage extends Construct {
  readonly imagePath: string;
  readonly profile: ProfileInfo;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: CustomizedImageProps) {
    super(scope, id);
    this.profile = readProfile(props.profilesDir, props.profile, props.release);
    const requirements = { secureBoot: props.secureBoot };
    this.imagePath = path.join(props.cacheDir, "images", `${props.profile}-${customizedImageKey(props.cloudImage.contentKey, this.profile, requirements)}.qcow2`);
    this.step = hostStep(this, "customize", {
      script: SCRIPT,
      args: customizeArgs(this.profile, props.release, props.cloudImage.basePath, this.imagePath, requirements),
      // The image is a pure function of its inputs: reuse it when it is already built.
      skipIfExists: this.imagePath,
      before: props.cloudImage.ensureCommand,
      triggers: {
        base_image: props.cloudImage.step.id,
        profile: props.profile,
        profile_files: this.profile.fileHashes,
        // The plan summary names the first of them that runs again (the ones before it are cached).
        layers: customizationLayers(this.profile),
        // The image's path (its key) changes with it; the step must run again to build it there.
        secure_boot: props.secureBoot,
      },
      dependsOn: [props.cloudImage.step],
    });
  }
}
