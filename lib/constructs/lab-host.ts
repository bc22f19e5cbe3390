// One libvirt connection the lab runs VMs on: its provider (aliased after the host,
// except the default host's, which keeps the addresses labs had before hosts existed),
// its network and its storage. Images are built once, on the build host; each host's
// base volumes are uploaded to it through its connection.
import { Construct } from "constructs";
import { ITerraformDependable, LibvirtProvider } from "../cdk";
import { DEFAULT_HOST, HostConfig, LabConfig } from "../config/config";
import { LabNetwork } from "./lab-network";
import { LabStorage } from "./lab-storage";

export interface LabHostProps {
  lab: LabConfig;
  host: HostConfig;
  dependsOn: ITerraformDependable[];
}

export class LabHost {
  readonly config: HostConfig;
  readonly provider: LibvirtProvider;
  readonly network: LabNetwork;
  readonly storage: LabStorage;

  /** Created in the stack's scope: ids "libvirt", "network", "storage" for the default host, "<id>-<host>" for others. */
  constructor(scope: Construct, props: LabHostProps) {
    const { lab, host } = props;
    const suffix = host.name === DEFAULT_HOST ? "" : `-${host.name}`;
    this.config = host;
    this.provider = new LibvirtProvider(scope, `libvirt${suffix}`, { uri: host.uri, alias: suffix ? host.name : undefined });
    this.network = new LabNetwork(scope, `network${suffix}`, { network: host.network, provider: this.provider, dependsOn: props.dependsOn });
    this.storage = new LabStorage(scope, `storage${suffix}`, {
      labName: lab.name,
      poolRoot: lab.libvirt.poolPath,
      host: host.name,
      provider: this.provider,
      dependsOn: props.dependsOn,
    });
  }
}
