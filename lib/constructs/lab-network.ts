// The lab's network: one we create (NAT or isolated, with DHCP), or an
// existing libvirt network or host bridge we only attach to (Preflight
// checks that it exists).
import { Construct } from "constructs";
import { ITerraformDependable, LibvirtProvider, Network } from "../cdk";
import { NetworkConfig } from "../config/config";

export interface LabNetworkProps {
  network: NetworkConfig;
  provider: LibvirtProvider;
  dependsOn: ITerraformDependable[];
}

/** What a domain's network_interface needs to join this network. */
export interface NetworkAttachment {
  networkId?: string;
  networkName?: string;
  bridge?: string;
  /** Our own networks serve DHCP, so the domain can wait for its lease. */
  waitForLease: boolean;
}

export class LabNetwork extends Construct {
  readonly attachment: NetworkAttachment;

  constructor(scope: Construct, id: string, props: LabNetworkProps) {
    super(scope, id);
    const { network } = props;
    if (network.mode === "bridge") {
      this.attachment = { bridge: network.bridge, waitForLease: false };
    } else if (!network.create) {
      this.attachment = { networkName: network.name, waitForLease: false };
    } else {
      const created = new Network(this, "network", {
        provider: props.provider,
        name: network.name,
        mode: network.mode === "nat" ? "nat" : "none",
        addresses: [network.cidr as string],
        autostart: false,
        dhcp: { enabled: true },
        dns: { enabled: true, localOnly: true },
        dependsOn: props.dependsOn,
      });
      this.attachment = { networkId: created.id, waitForLease: true };
    }
  }
}
