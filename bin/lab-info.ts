// Prints what shell scripts (bin/btw, the CI image job) need from the lab
// config as `name='value'` lines to eval, so no shell script parses YAML.
import { ConfigError, loadConfig } from "../lib/config";
import { shellQuote } from "../lib/host-step";

try {
  const lab = loadConfig();
  const values: Record<string, string> = {
    lab_name: lab.name,
    libvirt_uri: lab.libvirt.uri,
    vm_names: lab.vms.map((vm) => vm.name).join(" "),
    // The default profile and every profile a VM boots: one image each.
    image_profiles: [...new Set([lab.profile, ...lab.vms.map((vm) => vm.profile)])].join(" "),
    profiles_dir: lab.profilesDir,
    image_url: lab.image.url,
    image_checksums: lab.image.checksums,
  };
  for (const [name, value] of Object.entries(values)) console.log(`${name}=${shellQuote(value)}`);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`btw-img: ${error.message}`);
  process.exitCode = 1;
}
