// The lab's storage pool and one base volume per customized image; machines
// get copy-on-write overlays on top of these.
import * as path from "path";
import { Construct } from "constructs";
import { ITerraformDependable, Pool, resourceAddress, Volume } from "../cdk";
import { CustomizedImage } from "./customized-image";
import { baseVolumeName, poolName } from "../config/names";

export interface LabStorageProps {
  labName: string;
  poolRoot: string;
  dependsOn: ITerraformDependable[];
}

export class LabStorage extends Construct {
  readonly pool: Pool;
  private readonly baseVolumes = new Map<string, Volume>();

  constructor(scope: Construct, id: string, private readonly props: LabStorageProps) {
    super(scope, id);
    this.pool = new Pool(this, "pool", {
      name: poolName(props.labName),
      type: "dir",
      target: { path: path.join(props.poolRoot, props.labName) },
      dependsOn: props.dependsOn,
    });
  }

  /** The base volume holding a customized image, created once per profile. */
  baseVolumeFor(image: CustomizedImage): Volume {
    const existing = this.baseVolumes.get(image.profile.name);
    if (existing) return existing;
    const volume = new Volume(this, `base-${image.profile.name}`, {
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
