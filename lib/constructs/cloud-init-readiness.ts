// A lab VM is ready when cloud-init is done in it (scripts/steps/wait-for-cloud-init.sh):
// the apply fails when it fails or does not finish in readiness.timeout.
import { Construct } from "constructs";
import { Domain, MAIN_CHILD_ID, TerraformData } from "../cdk";
import { LabConfig, VmConfig } from "../config/config";
import { hostStep } from "./host-step";
import { VmNames } from "../config/names";
import { virshUri } from "../config/libvirt-uri";

export interface CloudInitReadinessProps {
  lab: LabConfig;
  vm: VmConfig;
  /** The VM's host's libvirt URI: readiness asks its guest agent through the same connection. */
  uri: string;
  names: VmNames;
  domain: Domain;
}

export class CloudInitReadiness extends Construct {
  /** Its output `ready` is true once a wait saw cloud-init done. */
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: CloudInitReadinessProps) {
    super(scope, id);
    const { lab, vm, names } = props;
    this.step = hostStep(this, MAIN_CHILD_ID, {
      script: "wait-for-cloud-init.sh",
      args: ["--uri", virshUri(props.uri), "--domain", names.domain, "--hostname", vm.name, "--timeout", String(lab.readiness.timeout), "--console-log", names.consoleLog],
      // A new domain (a new disk or seed recreates it) is waited for again.
      triggers: { domain: props.domain.id },
      // Only a run that saw cloud-init done gets here: a failed wait fails the apply.
      input: { ready: true },
      dependsOn: [props.domain],
    });
  }
}
