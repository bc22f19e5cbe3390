// Prints what the CI jobs' shell steps need from the lab config as
// `name='value'` lines to eval, so no shell script parses YAML.
import { labInfo } from "../lib/cli/lab-info";
import { ConfigError, loadConfig } from "../lib/config/config";
import { shellQuote } from "../lib/constructs/host-step";

try {
  const info = labInfo(loadConfig());
  const values: Record<string, string> = {
    lab_name: info.name,
    libvirt_uri: info.libvirtUri,
    vm_names: info.vms.map((vm) => vm.name).join(" "),
    vm_domains: info.vms.map((vm) => `${vm.name} ${vm.domain} ${vm.host} ${vm.uri}`).join("\n"),
    synth_dir: info.synthDir,
    state_backend: info.state.backend,
    state_conn_str: info.state.connStr,
    state_schemas: info.state.schemas.join(" "),
    lock_timeout: String(info.state.lockTimeout),
  };
  for (const [name, value] of Object.entries(values)) console.log(`${name}=${shellQuote(value)}`);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`btw-img: ${error.message}`);
  process.exitCode = 1;
}
