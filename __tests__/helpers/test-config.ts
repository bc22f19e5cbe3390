// The lab config as unit tests parse it: checked against a host with no routes
// and no libvirt networks unless a test passes its own, so a unit test reads
// nothing from this machine (a lab network another program made must not
// change a unit test's result).
import { HostNetworks } from "../../lib/config/host-network";
import { ConfigError, LabConfig, loadConfig, LoadOptions, parseConfig as parseLabConfig } from "../../lib/config/config";

export const NO_HOST: HostNetworks = { routes: () => [], networkBridge: () => undefined };

export function parseConfig(text: string, sourceFile: string, options: LoadOptions = {}): LabConfig {
  return parseLabConfig(text, sourceFile, { host: NO_HOST, ...options });
}

/** The problems the config check names in FILE (none when it loads). */
export function configProblems(file: string): string[] {
  try {
    loadConfig(file);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}
