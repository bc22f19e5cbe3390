// A lab VM's cloud-init seed: NoCloud data rendered from the config (lib/config/seed.ts)
// into an ISO in the cache (scripts/steps/make-seed-iso.sh), checked against the image
// it will boot. A new seed means a new VM (lib/constructs/vm-domain.ts).
import * as path from "path";
import { Construct } from "constructs";
import { ITerraformDependable, MAIN_CHILD_ID, TerraformData } from "../cdk";
import { LabConfig, VmConfig } from "../config/config";
import { CustomizedImage } from "./customized-image";
import { hostStep, shellQuote } from "./host-step";
import { VmNames } from "../config/names";
import { cloudConfigShape, renderSeed, seedTextSha256 } from "../config/seed";

export interface SeedDiskProps {
  lab: LabConfig;
  vm: VmConfig;
  names: VmNames;
  image: CustomizedImage;
  dependsOn: ITerraformDependable[];
}

export class SeedDisk extends Construct {
  readonly isoPath: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: SeedDiskProps) {
    super(scope, id);
    const { lab, vm, names } = props;
    this.isoPath = names.seedIso;
    const seed = renderSeed(lab, vm);
    this.step = hostStep(this, MAIN_CHILD_ID, {
      script: "make-seed-iso.sh",
      args: ["--name", vm.name, "--output", this.isoPath, "--validate-with", props.image.imagePath],
      environment: { USER_DATA: seed.userData, META_DATA: seed.metaData, NETWORK_CONFIG: seed.networkConfig },
      // Triggers are kept in state: of user-data, which may hold secrets, only its hash and its keys' sizes.
      triggers: {
        user_data_sha256: seedTextSha256(seed.userData),
        user_data_keys: cloudConfigShape(seed.userData),
        meta_data: seed.metaData,
        network_config: seed.networkConfig,
        image: props.image.step.id,
      },
      // Destroyed after the domain (which needs the seed), so this also takes the
      // console log and libvirt's QEMU log of the domain once nothing writes them.
      destroyCommand: `rm -f ${[this.isoPath, names.consoleLog, names.qemuLog].map(shellQuote).join(" ")}` + ` && { rmdir -p ${shellQuote(path.dirname(this.isoPath))} 2>/dev/null || true; }`,
      dependsOn: [props.image.step, ...props.dependsOn],
    });
  }
}
