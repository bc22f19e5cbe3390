// Checks what the lab needs from the host before anything is created:
// libvirtd answers, attached networks/bridges exist, firmware files exist.
import { Construct } from "constructs";
import { TerraformData } from "../cdk";
import { LabConfig } from "../config/config";
import { hostStep } from "./host-step";
import { virshUri } from "../config/libvirt-uri";

export interface PreflightProps {
  lab: LabConfig;
}

export class Preflight extends Construct {
  readonly step: TerraformData;
  /** step, and a check that each other host the VMs use answers. */
  readonly steps: TerraformData[];

  constructor(scope: Construct, id: string, props: PreflightProps) {
    super(scope, id);
    const { libvirt, network } = props.lab;
    const args = ["--uri", virshUri(libvirt.uri)];
    if (network.mode === "bridge") args.push("--bridge", network.bridge as string);
    else if (!network.create) args.push("--network", network.name);
    if (libvirt.firmware !== "bios") {
      args.push("--file", `libvirt.ovmf_code=${libvirt.ovmfCode}`, "--file", `libvirt.ovmf_vars=${libvirt.ovmfVars}`);
    }
    this.step = hostStep(this, "host-check", { script: "check-host.sh", args, triggers: { args: args.join(" ") } });
    const used = new Set(props.lab.vms.map((vm) => vm.host));
    this.steps = [
      this.step,
      ...props.lab.hosts
        .slice(1)
        .filter((host) => used.has(host.name))
        .map((host) => hostStep(this, `host-check-${host.name}`, { script: "check-host.sh", args: ["--uri", virshUri(host.uri)], triggers: { uri: host.uri } })),
    ];
  }
}
