// A real PostgreSQL server (Debian's postgresql package) for tests: its own cluster in a
// folder of the test's, listening on a free loopback port, one role with a password
// (scram-sha-256) and one database. stop() ends the server and removes the folder.
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { freePort } from "./free-port";

/** The newest server Debian's postgresql package installed. */
function serverBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin", "postgres"))) : [];
  if (versions.length === 0) throw new Error("PostgreSQL's server is not installed: apt-get install postgresql (scripts/host/host-requirements.txt)");
  return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0], "bin");
}

export interface PostgresServer {
  /** postgres://<role>:<password>@127.0.0.1:<port>/<database>?sslmode=disable */
  connStr: string;
  password: string;
  port: number;
  dir: string;
  /** The server's pid file (for testkit/held.ts). */
  pidFile: string;
  /** Runs SQL as the test's role; returns psql's unaligned output. */
  sql(query: string): string;
  stop(): void;
}

/** The server runs as the postgres user (it refuses root) in a folder that user owns. */
export async function startPostgres(name: string): Promise<PostgresServer> {
  const bin = serverBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-pg-`));
  const password = crypto.randomBytes(18).toString("base64url");
  const role = "btw";
  const database = "btw";
  const port = await freePort();
  const data = path.join(dir, "data");
  fs.writeFileSync(path.join(dir, "password"), `${password}\n`, { mode: 0o600 });
  execFileSync("chown", ["-R", "postgres:postgres", dir]);
  const asPostgres = (program: string, args: string[]) =>
    execFileSync("runuser", ["-u", "postgres", "--", path.join(bin, program), ...args], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  asPostgres("initdb", ["-D", data, "-U", role, "-A", "scram-sha-256", `--pwfile=${path.join(dir, "password")}`, "--no-sync"]);
  fs.rmSync(path.join(dir, "password"));
  asPostgres("pg_ctl", ["-D", data, "-l", path.join(dir, "server.log"), "-w", "-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off`, "start"]);
  const connStr = (db: string) => `postgres://${role}:${password}@127.0.0.1:${port}/${db}?sslmode=disable`;
  const psql = (db: string, query: string) => execFileSync("psql", [connStr(db), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query], { encoding: "utf8" });
  psql("postgres", `CREATE DATABASE ${database}`);
  return {
    connStr: connStr(database),
    password,
    port,
    dir,
    pidFile: path.join(data, "postmaster.pid"),
    sql: (query) => psql(database, query),
    stop: () => {
      if (fs.existsSync(data)) spawnSync("runuser", ["-u", "postgres", "--", path.join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"], { stdio: "ignore" });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
