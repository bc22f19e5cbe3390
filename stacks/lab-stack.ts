// The lab: acquire and customize the image once per profile, then one
// verified machine per VM on the lab's network and storage.
import { Construct } from "constructs";
import { LibvirtProvider, TerraformStack } from "../lib/cdk";
import { CloudImage } from "../lib/cloud-image";
import { LabConfig } from "../lib/config";
import { CustomizedImage } from "../lib/customized-image";
import { LabMachine } from "../lib/lab-machine";
import { LabNetwork } from "../lib/lab-network";
import { LabStorage } from "../lib/lab-storage";
import { PartitionCapture } from "../lib/partition-capture";
import { Preflight } from "../lib/preflight";

export class LabStack extends TerraformStack {
  readonly machines: LabMachine[];

  constructor(scope: Construct, id: string, lab: LabConfig) {
    super(scope, id);
    new LibvirtProvider(this, "libvirt", { uri: lab.libvirt.uri });

    const preflight = new Preflight(this, "preflight", { lab });
    const cloudImage = new CloudImage(this, "cloud-image", {
      url: lab.image.url,
      checksums: lab.image.checksums,
      cacheDir: lab.cacheDir,
      dependsOn: [preflight.step],
    });
    const images = new Map<string, CustomizedImage>();
    for (const profile of new Set(lab.vms.map((vm) => vm.profile))) {
      images.set(profile, new CustomizedImage(this, `image-${profile}`, { cloudImage, profilesDir: lab.profilesDir, profile, release: lab.release, cacheDir: lab.cacheDir }));
    }
    // Bare-metal artifacts of exactly the images the VMs boot (read-only, in parallel with the boots).
    for (const [profile, image] of images) {
      new PartitionCapture(this, `capture-${profile}`, { image, outputRoot: lab.baremetal.outputDir });
    }
    // Nothing is created in libvirt until the host checks passed and the image was acquired.
    const ready = [preflight.step, cloudImage.step];
    const network = new LabNetwork(this, "network", { network: lab.network, dependsOn: ready });
    const storage = new LabStorage(this, "storage", { labName: lab.name, poolRoot: lab.libvirt.pool_path, dependsOn: ready });
    this.machines = lab.vms.map(
      (vm) =>
        new LabMachine(this, `vm-${vm.name}`, {
          lab,
          vm,
          image: images.get(vm.profile) as CustomizedImage,
          storage,
          network: network.attachment,
          dependsOn: [preflight.step],
        }),
    );
  }
}
