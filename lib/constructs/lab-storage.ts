// The lab's storage pool and one base volume per customized image; machines
// get copy-on-write overlays on top of these.
import * as path from "path";
import { Construct } from "constructs";
import { ITerraformDependable, LibvirtProvider, Pool, resourceAddress, Volume } from "../cdk";
import { CustomizedImage } from "./customized-image";
import { baseVolumeName, poolDir, poolName } from "../config/names";

export interface LabStorageProps {
  labName: string;
  poolRoot: string;
  /** The host's name (lib/config/names.ts names its pool after it). */
  host: string;
  /** The host's libvirt connection; base volumes are uploaded through it. */
  provider: LibvirtProvider;
  dependsOn: ITerraformDependable[];
}

export class LabStorage extends Construct {
  readonly pool: Pool;
  private readonly baseVolumes = new Map<string, Volume>();

  constructor(
    scope: Construct,
    id: string,
    private readonly props: LabStorageProps,
  ) {
    super(scope, id);
    this.pool = new Pool(this, "pool", {
      provider: props.provider,
      name: poolName(props.labName, props.host),
      type: "dir",
      target: { path: poolDir(props.poolRoot, props.labName, props.host) },
      dependsOn: props.dependsOn,
    });
  }

  /** The base volume holding a customized image, created once per profile. */
  baseVolumeFor(image: CustomizedImage): Volume {
    const existing = this.baseVolumes.get(image.profile.name);
    if (existing) return existing;
    // source is a file on the build host: the provider uploads it through the host's connection.
    const volume = new Volume(this, `base-${image.profile.name}`, {
      provider: this.props.provider,
      name: baseVolumeName(this.props.labName, path.basename(image.imagePath)),
      pool: this.pool.name,
      source: image.imagePath,
      format: "qcow2",
      dependsOn: [image.step],
      lifecycle: { replaceTriggeredBy: [resourceAddress(image.step)] },
    });
    this.baseVolumes.set(image.profile.name, volume);
    return volume;
  }
}
