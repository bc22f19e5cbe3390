// The PXE deploy server of the bare-metal machines (scripts/steps/pxe-server.sh):
// dnsmasq bound to one bridge plus an HTTP server for iPXE scripts, the deploy
// environment, the captured artifacts and each machine's cloud-init seed.
// Destroying it (also each time its triggers replace it) stops both daemons and
// removes their files, but not the records of installed machines: those live in
// <stateDir>.records, so a changed seed or image never restores a machine again.
// The resource stays in the stack without machines (its step then only stops a
// server): the engine runs a destroy step only for a resource still configured,
// so the last machine's removal stops the server too. The destroy step stops the
// folder the server was started in (kept in its state), not the configured one.
import * as crypto from "crypto";
import { Construct } from "constructs";
import { Fn, TerraformData, TerraformSelf } from "../cdk";
import { LabConfig } from "../config/config";
import { LAYOUT_NEEDS } from "../config/layout";
import { DeployEnvironment } from "./deploy-environment";
import { hostStep, scriptCommand } from "./host-step";
import { pxeRecordsDir, pxeServerDir } from "../config/names";
import { PartitionCapture } from "./partition-capture";
import { renderSeed } from "../config/seed";

export interface PxeServerProps {
  lab: LabConfig;
  /** Deploy environment of each profile the machines use: a machine is restored by its image's own kernel (none: no server runs). */
  deployEnvironments: Map<string, DeployEnvironment>;
  /** Capture of each profile the machines use. */
  captures: Map<string, PartitionCapture>;
}

export class PxeServer extends Construct {
  readonly stateDir: string;
  /** Which machines are installed (pxe-server.sh status, btw metal reinstall). */
  readonly recordsDir: string;
  readonly baseUrl: string;
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: PxeServerProps) {
    super(scope, id);
    const { lab } = props;
    const pxe = lab.baremetal.pxe;
    this.stateDir = pxeServerDir(pxe.stateDir, lab.name);
    this.recordsDir = pxeRecordsDir(this.stateDir);
    this.baseUrl = `http://${pxe.address}:${pxe.httpPort}`;
    // The folder of the server being destroyed: the one it recorded when it started (older
    // servers recorded none: the configured one).
    const startedIn = Fn.try([TerraformSelf.getString("output.state_dir"), this.stateDir]);
    const destroyCommand = `${scriptCommand("pxe-server.sh", ["stop"])} --state-dir ${startedIn}`;
    if (lab.baremetal.machines.length === 0) {
      this.step = hostStep(this, "server", {
        script: "pxe-server.sh",
        args: ["stop", "--state-dir", this.stateDir],
        triggers: { args: `stop --state-dir ${this.stateDir}` },
        input: { state_dir: this.stateDir },
        destroyCommand,
      });
      return;
    }
    const machines = lab.baremetal.machines.map((machine) => {
      // Rendered like a lab VM's seed: the machine's name is its hostname.
      const seed = renderSeed(lab, machine);
      return {
        name: machine.name,
        mac: machine.mac,
        profile: machine.profile,
        // Empty: the machine's only disk, which the deploy environment finds.
        disks: machine.disks,
        layout: machine.layout,
        wipe: machine.wipe,
        first_boot: machine.firstBoot,
        transport: machine.transport,
        // What of the capture its layout writes in place of captured partitions (which multicast sessions it joins).
        prepared: LAYOUT_NEEDS[machine.layout].prepared,
        user_data: seed.userData,
        meta_data: seed.metaData,
        network_config: seed.networkConfig,
      };
    });
    const machinesJson = JSON.stringify(machines);
    const args = ["start", "--state-dir", this.stateDir, "--interface", pxe.interface as string, "--address", pxe.address as string];
    if (pxe.dhcpRange) args.push("--dhcp-range", pxe.dhcpRange);
    args.push("--http-port", String(pxe.httpPort));
    if (machines.some((machine) => machine.transport === "multicast")) {
      const { portBase, minReceivers, maxWait, fallbackAfter } = pxe.multicast;
      args.push("--multicast-port-base", String(portBase), "--multicast-max-wait", String(maxWait), "--multicast-wait", String(fallbackAfter));
      if (minReceivers !== undefined) args.push("--multicast-min-receivers", String(minReceivers));
    }
    for (const [profile, environment] of props.deployEnvironments) args.push("--deploy", `${profile}=${environment.dir}`);
    for (const [profile, capture] of props.captures) args.push("--artifacts", `${profile}=${capture.outputDir}`);
    const deploySteps = [...props.deployEnvironments.values()].map((environment) => environment.step);
    this.step = hostStep(this, "server", {
      script: "pxe-server.sh",
      args,
      environment: { PXE_MACHINES: machinesJson },
      triggers: {
        args: args.join(" "),
        machines: machines.map((m) => `${m.name} ${m.mac} ${m.profile} ${m.layout} ${m.disks.join(",")} ${m.wipe} ${m.first_boot} ${m.transport}`).join(", "),
        seeds_sha256: crypto.createHash("sha256").update(machinesJson).digest("hex"),
        deploy_environments: deploySteps.map((step) => step.id).join(","),
        captures: [...props.captures.values()].map((capture) => capture.step.id).join(","),
      },
      input: { state_dir: this.stateDir },
      destroyCommand,
      dependsOn: [...deploySteps, ...[...props.captures.values()].map((capture) => capture.step)],
    });
  }
}
