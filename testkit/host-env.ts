// The environment scripts/host/setup-host.sh writes to .btw/env.sh (engine, CLI
// config with the provider mirror, cache folder), for runs that were not
// started with it sourced (`npm run test:integration`, a bare `npx jest`).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";

/** Sets in this process (and so in the processes it starts) what .btw/env.sh exports. */
export function useHostEnv(): void {
  const envFile = path.join(PROJECT_DIR, ".btw", "env.sh");
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run \`npm run setup\` first (engine, provider mirror)`);
  const dump = execFileSync("sh", ["-c", '. "$0" && env -0', envFile], { encoding: "utf8" });
  for (const line of dump.split("\0").filter(Boolean)) process.env[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
}
