// The lab: acquire and customize the image once per profile, then one
// verified machine per VM on the lab's network and storage.
import { Construct } from "constructs";
import { TerraformStack } from "../lib/cdk";
import { LabConfig } from "../lib/config/config";
import { ImagePipeline } from "../lib/constructs/image-pipeline";
import { LabHost } from "../lib/constructs/lab-host";
import { LabMachine } from "../lib/constructs/lab-machine";
import { Preflight } from "../lib/constructs/preflight";

export class LabStack extends TerraformStack {
  readonly machines: LabMachine[];

  constructor(scope: Construct, id: string, lab: LabConfig) {
    super(scope, id);
    const preflight = new Preflight(this, "preflight", { lab });
    // An image per profile the VMs boot, and the bare-metal artifacts of exactly those
    // images (captured read-only, in parallel with the boots).
    const images = new ImagePipeline(this, {
      lab,
      profiles: lab.vms.map((vm) => vm.profile),
      capture: true,
      dependsOn: preflight.steps,
    });
    // Nothing is created in libvirt until the host checks passed and the image was acquired.
    const ready = [...preflight.steps, images.cloudImage.step];
    // Each host the VMs use: its own provider, network, pool and base volumes.
    const hosts = new Map(lab.hosts.filter((host, index) => index === 0 || lab.vms.some((vm) => vm.host === host.name)).map((host) => [host.name, new LabHost(this, { lab, host, dependsOn: ready })]));
    this.machines = lab.vms.map((vm) => {
      const host = hosts.get(vm.host) as LabHost;
      return new LabMachine(this, `vm-${vm.name}`, {
        lab,
        vm,
        image: images.image(vm.profile),
        host,
        dependsOn: preflight.steps,
      });
    });
  }
}
