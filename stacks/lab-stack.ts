// The lab: acquire and customize the image once per profile, then one
// verified machine per VM on the lab's network and storage.
import { Construct } from "constructs";
import { LibvirtProvider, TerraformStack } from "../lib/cdk";
import { LabConfig } from "../lib/config/config";
import { ImagePipeline } from "../lib/constructs/image-pipeline";
import { LabMachine } from "../lib/constructs/lab-machine";
import { LabNetwork } from "../lib/constructs/lab-network";
import { LabStorage } from "../lib/constructs/lab-storage";
import { Preflight } from "../lib/constructs/preflight";

export class LabStack extends TerraformStack {
  readonly machines: LabMachine[];

  constructor(scope: Construct, id: string, lab: LabConfig) {
    super(scope, id);
    new LibvirtProvider(this, "libvirt", { uri: lab.libvirt.uri });

    const preflight = new Preflight(this, "preflight", { lab });
    // An image per profile the VMs boot, and the bare-metal artifacts of exactly those
    // images (captured read-only, in parallel with the boots).
    const images = new ImagePipeline(this, {
      lab,
      profiles: lab.vms.map((vm) => vm.profile),
      capture: true,
      dependsOn: [preflight.step],
    });
    // Nothing is created in libvirt until the host checks passed and the image was acquired.
    const ready = [preflight.step, images.cloudImage.step];
    const network = new LabNetwork(this, "network", { network: lab.network, dependsOn: ready });
    const storage = new LabStorage(this, "storage", { labName: lab.name, poolRoot: lab.libvirt.poolPath, dependsOn: ready });
    this.machines = lab.vms.map(
      (vm) =>
        new LabMachine(this, `vm-${vm.name}`, {
          lab,
          vm,
          image: images.image(vm.profile),
          storage,
          network: network.attachment,
          dependsOn: [preflight.step],
        }),
    );
  }
}
