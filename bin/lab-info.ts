// Prints what shell scripts (bin/btw, the CI image job) need from the lab
// config as `name='value'` lines to eval, so no shell script parses YAML.
import * as path from "path";
import { ConfigError, loadConfig, PROJECT_DIR } from "../lib/config/config";
import { shellQuote } from "../lib/constructs/host-step";
import { domainName, stateSchemaName } from "../lib/config/names";
import { virshUri } from "../lib/config/libvirt-uri";
import { DEFAULT_OUTDIR, labOutdir } from "../lib/plan/synth-output";

try {
  const lab = loadConfig();
  const values: Record<string, string> = {
    lab_name: lab.name,
    libvirt_uri: lab.libvirt.uri,
    vm_names: lab.vms.map((vm) => vm.name).join(" "),
    // One "VM domain host URI" line per VM: btw takes the libvirt names from lib/config/names.ts, as the
    // stacks do, and reaches each VM through its host's URI as virsh takes it (no URI holds whitespace).
    vm_domains: lab.vms
      .map((vm) => `${vm.name} ${domainName(lab.name, vm.name)} ${vm.host} ${virshUri(lab.hosts.find((host) => host.name === vm.host)?.uri ?? lab.libvirt.uri)}`)
      .join("\n"),
    // The lab's own cdktf output folder in the project, for `cdktf ... --output`.
    synth_dir: labOutdir(path.join(PROJECT_DIR, DEFAULT_OUTDIR), lab.name),
    // state.backend pg: the schemas of the lab and baremetal stacks, to name who holds their lock.
    state_backend: lab.state.backend,
    state_conn_str: lab.state.connStr ?? "",
    state_schemas: ["lab", "baremetal"].map((stack) => stateSchemaName(lab.name, stack)).join(" "),
    lock_timeout: String(lab.state.lockTimeout),
  };
  for (const [name, value] of Object.entries(values)) console.log(`${name}=${shellQuote(value)}`);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`btw-img: ${error.message}`);
  process.exitCode = 1;
}
