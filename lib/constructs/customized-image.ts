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
import { baseFileKey, layerPlan, layerStepNames } from "../image/layer-plan";

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

/** What a build takes beyond the profile: what names the base, layers and mirrors a test or tool adds. */
export interface BuildInputs {
  /** What names the base image's content (the acquired image's sha512); default: baseFileKey of the base. */
  baseKey?: string;
  /** Layer folders applied after the profile's (a keyring a user would place, say). */
  extraLayers?: string[];
  /** URI -> where the build fetches that repository from (an internal mirror, a stand-in). */
  aptMirrors?: Record<string, string>;
}

/** The arguments of scripts/steps/customize-image.sh that build `profile` (resolved for `release`) from `base` into `output`, with its layer plan. */
export function customizeArgs(profile: ProfileInfo, release: string, base: string, output: string, requirements: ImageRequirements, build: BuildInputs = {}): string[] {
  const layers = [...profile.layers, ...(build.extraLayers ?? [])];
  const plan = layerPlan({ baseKey: build.baseKey ?? baseFileKey(base), release, layers, packages: profile.packages, aptMirrors: build.aptMirrors });
  return [
    "--base",
    base,
    "--release",
    release,
    ...layers.flatMap((layer) => ["--layer", layer]),
    ...profile.packageLines.flatMap((pkg) => ["--package", `${pkg.name} ${pkg.origin}`]),
    ...Object.entries(build.aptMirrors ?? {}).flatMap(([uri, mirror]) => ["--apt-mirror", `${uri}=${mirror}`]),
    ...plan.flatMap((step) => ["--step", `${step.key} ${step.name}`]),
    ...(requirements.secureBoot ? ["--secure-boot"] : []),
    "--output",
    output,
  ];
}

/** The names of the steps customize-image.sh builds as cached layers, in order (lib/image/layer-plan.ts). */
export function customizationLayers(profile: ProfileInfo, release: string): string[] {
  return layerStepNames({ release, layers: profile.layers, packages: profile.packages });
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
      args: customizeArgs(this.profile, props.release, props.cloudImage.basePath, this.imagePath, requirements, { baseKey: `image ${props.cloudImage.contentKey}` }),
      // The image is a pure function of its inputs: reuse it when it is already built.
      skipIfExists: this.imagePath,
      before: props.cloudImage.ensureCommand,
      triggers: {
        base_image: props.cloudImage.step.id,
        profile: props.profile,
        profile_files: this.profile.fileHashes,
        // The plan summary names the first of them that runs again (the ones before it are cached).
        layers: customizationLayers(this.profile, props.release),
        // The image's path (its key) changes with it; the step must run again to build it there.
        secure_boot: props.secureBoot,
      },
      dependsOn: [props.cloudImage.step],
    });
  }
}
