// Bare metal: the captured artifacts of each profile the machines use, the
// deploy environment and the PXE server that restores them onto the machines.
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack } from "../lib/cdk";
import { LabConfig } from "../lib/config/config";
import { DeployEnvironment } from "../lib/constructs/deploy-environment";
import { ImagePipeline } from "../lib/constructs/image-pipeline";
import { MachinePower } from "../lib/constructs/machine-power";
import { PxeServer } from "../lib/constructs/pxe-server";

export class BaremetalStack extends TerraformStack {
  readonly server: PxeServer;

  constructor(scope: Construct, id: string, lab: LabConfig) {
    super(scope, id);
    const { machines } = lab.baremetal;
    const profiles = machines.length > 0 ? [...new Set(machines.map((machine) => machine.profile))] : [lab.profile];
    // The same cached image and capture folder as the lab's: built once, whichever stack runs first.
    const images = new ImagePipeline(this, { lab, profiles, capture: true });
    for (const [profile, capture] of images.captures) {
      new TerraformOutput(this, `artifacts-${profile}`, { value: capture.manifestPath });
    }
    // Each machine is restored by the kernel of the image it receives: the drivers that boot it also deploy it.
    const deployEnvironments = new Map(
      (machines.length > 0 ? profiles : []).map((profile) => {
        const layouts = machines.filter((machine) => machine.profile === profile).map((machine) => machine.layout);
        return [profile, new DeployEnvironment(this, `deploy-env-${profile}`, { image: images.image(profile), cacheDir: lab.cacheDir, layouts })];
      }),
    );
    // Without machines the server resource stays, and only stops what an earlier deploy started.
    this.server = new PxeServer(this, "pxe", { lab, deployEnvironments, captures: images.captures });
    if (machines.length === 0) return;
    // Machines with a BMC are powered into their install; the others by a person.
    for (const machine of machines.filter((m) => m.bmc)) {
      const { reportTimeout, powerRetries } = lab.baremetal;
      new MachinePower(this, `power-${machine.name}`, { machine, recordsDir: this.server.recordsDir, server: this.server.step, reportTimeout, powerRetries });
    }
    new TerraformOutput(this, "pxe-server", {
      value: {
        url: this.server.baseUrl,
        state_dir: this.server.stateDir,
        records_dir: this.server.recordsDir,
        interface: lab.baremetal.pxe.interface,
        machines: machines.map((m) => ({ name: m.name, mac: m.mac })),
      },
    });
  }
}
