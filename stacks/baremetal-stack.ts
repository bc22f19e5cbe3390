// Bare metal: the captured artifacts of each profile the machines use, the
// deploy environment and the PXE server that restores them onto the machines.
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack } from "../lib/cdk";
import { CloudImage } from "../lib/cloud-image";
import { LabConfig } from "../lib/config";
import { CustomizedImage } from "../lib/customized-image";
import { DeployEnvironment } from "../lib/deploy-environment";
import { PartitionCapture } from "../lib/partition-capture";
import { PxeServer } from "../lib/pxe-server";

export class BaremetalStack extends TerraformStack {
  readonly captures = new Map<string, PartitionCapture>();
  readonly server?: PxeServer;

  constructor(scope: Construct, id: string, lab: LabConfig) {
    super(scope, id);
    const { machines } = lab.baremetal;
    const profiles = machines.length > 0 ? [...new Set(machines.map((machine) => machine.profile))] : [lab.profile];
    // The same cached image and capture folder as the lab's: built once, whichever stack runs first.
    const cloudImage = new CloudImage(this, "cloud-image", { url: lab.image.url, checksums: lab.image.checksums, cacheDir: lab.cacheDir });
    const images = new Map<string, CustomizedImage>();
    for (const profile of profiles) {
      const image = new CustomizedImage(this, `image-${profile}`, { cloudImage, profilesDir: lab.profilesDir, profile, release: lab.release, cacheDir: lab.cacheDir });
      images.set(profile, image);
      this.captures.set(profile, new PartitionCapture(this, `capture-${profile}`, { image, outputRoot: lab.baremetal.outputDir }));
    }
    for (const [profile, capture] of this.captures) {
      new TerraformOutput(this, `artifacts-${profile}`, { value: capture.manifestPath });
    }
    if (machines.length === 0) return;

    // Each machine is restored by the kernel of the image it receives: the drivers that boot it also deploy it.
    const deployEnvironments = new Map(
      profiles.map((profile) => [profile, new DeployEnvironment(this, `deploy-env-${profile}`, { image: images.get(profile) as CustomizedImage, cacheDir: lab.cacheDir })]),
    );
    this.server = new PxeServer(this, "pxe", { lab, deployEnvironments, captures: this.captures });
    new TerraformOutput(this, "pxe-server", {
      value: { url: this.server.baseUrl, state_dir: this.server.stateDir, records_dir: this.server.recordsDir, interface: lab.baremetal.pxe.interface, machines: machines.map((m) => ({ name: m.name, mac: m.mac })) },
    });
  }
}
