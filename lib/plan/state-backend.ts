// Where each stack of a lab keeps its state: a local file per lab and stack in
// BTW_STATE_DIR, or a schema per lab and stack in PostgreSQL (state.backend pg).
import * as fs from "fs";
import * as path from "path";
import { LocalBackend, PgBackend, TerraformStack } from "../cdk";
import { LabConfig, PROJECT_DIR } from "../config/config";
import { stateSchemaName } from "../config/names";

export function stateDir(): string {
  return process.env.BTW_STATE_DIR || path.join(PROJECT_DIR, ".btw", "state");
}

/** The local state file of a stack (`lab`: <lab>.tfstate, others <lab>-<stack>.tfstate). */
export function localStatePath(labName: string, stack: string): string {
  return path.join(stateDir(), stack === "lab" ? `${labName}.tfstate` : `${labName}-${stack}.tfstate`);
}

/**
 * Gives the stack its backend. With pg the connection string is the config's (which never
 * holds a password) or, left out of cdk.tf.json, PG_CONN_STR as the engine reads it.
 * Returns the local state file, if any.
 */
export function useStateBackend(stack: TerraformStack, lab: LabConfig, stackName: string): string | undefined {
  if (lab.state.backend === "pg") {
    new PgBackend(stack, { connStr: lab.state.connStr as string, schemaName: stateSchemaName(lab.name, stackName) });
    return undefined;
  }
  const statePath = localStatePath(lab.name, stackName);
  new LocalBackend(stack, { path: statePath });
  return statePath;
}

/**
 * The local state folder as only its owner may read it: its state files hold the lab's outputs
 * and what its steps were given. The engine writes new state files 0644 (umask), so the folder
 * is 0700, and older files are made 0600.
 */
export function protectStateDir(): void {
  const dir = stateDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  for (const file of fs.readdirSync(dir)) {
    if (/\.tfstate(\.backup)?$/.test(file)) fs.chmodSync(path.join(dir, file), 0o600);
  }
}
