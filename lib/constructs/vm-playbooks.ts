// A lab VM's Ansible playbooks (vms[].playbooks), run after readiness against the
// running domain through its guest agent (scripts/steps/run-playbooks.sh). They run
// again when the domain is created again or when anything in a playbook's folder
// (the playbook, its roles, vars, templates) changes; an unchanged lab does not run them.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Construct } from "constructs";
import { Domain, MAIN_CHILD_ID, TerraformData } from "../cdk";
import { LabConfig, VmConfig } from "../config/config";
import { VmNames } from "../config/names";
import { virshUri } from "../config/libvirt-uri";
import { hostStep } from "./host-step";

export interface VmPlaybooksProps {
  lab: LabConfig;
  vm: VmConfig;
  names: VmNames;
  /** The libvirt URI of the VM's host (hosts[]; the lab's libvirt.uri by default). */
  uri: string;
  domain: Domain;
  readiness: TerraformData;
}

/** Every file under dir (hidden entries left out: .git and the like), relative, sorted. */
function folderFiles(dir: string, prefix = ""): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .filter((entry) => !entry.name.startsWith("."))
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      return entry.isDirectory() ? folderFiles(dir, rel) : [rel];
    });
}

/** sha256 over a playbook's folder: each file's content (a link's target when it names a folder) with its path. */
export function playbookHash(playbook: string): string {
  const dir = path.dirname(playbook);
  const hash = crypto.createHash("sha256");
  for (const rel of folderFiles(dir)) {
    const file = path.join(dir, rel);
    const content = fs.statSync(file, { throwIfNoEntry: false })?.isFile()
      ? crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
      : fs.lstatSync(file).isSymbolicLink()
        ? `-> ${fs.readlinkSync(file)}`
        : "(not a file)";
    hash.update(`${content}  ${rel}\n`);
  }
  return hash.digest("hex");
}

export class VmPlaybooks extends Construct {
  readonly step: TerraformData;

  constructor(scope: Construct, id: string, props: VmPlaybooksProps) {
    super(scope, id);
    const { vm, names } = props;
    this.step = hostStep(this, MAIN_CHILD_ID, {
      script: "run-playbooks.sh",
      args: ["--uri", virshUri(props.uri), "--domain", names.domain, "--vm", vm.name, ...vm.playbooks.flatMap((playbook) => ["--playbook", playbook])],
      triggers: {
        // A new domain is a new machine: its playbooks run on it again.
        domain: props.domain.id,
        playbooks: vm.playbooks,
        playbook_folders: Object.fromEntries(vm.playbooks.map((playbook) => [playbook, playbookHash(playbook)])),
      },
      dependsOn: [props.readiness],
    });
  }
}
