// Where the project's own files are: the one owner of these paths, for config,
// constructs, tools and tests alike.
import * as path from "path";

export const PROJECT_DIR = path.resolve(__dirname, "..");
export const DEFAULT_CONFIG_PATH = path.join(PROJECT_DIR, "lab.yaml");
/** The host steps the stacks run (scripts/steps); scripts/host sets the host up, deploy-env/ runs on machines being deployed. */
export const SCRIPTS_DIR = path.join(PROJECT_DIR, "scripts", "steps");
/** The project's login key (scripts/host/setup-host.sh makes it): a lab's users without keys get its .pub, `btw ssh` uses it. */
export const LOGIN_KEY = path.join(PROJECT_DIR, ".btw", "ssh", "id_ed25519");
