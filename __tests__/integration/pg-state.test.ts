// A lab whose state lives in PostgreSQL (state.backend: pg): a real server from
// Debian's package on a loopback port, the real cdktf CLI and engine through `btw`.
// The connection string (with its password) reaches the engine only as PG_CONN_STR,
// and a run that meets another run's lock waits for it or gives up naming the holder.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { testLab } from "../../testkit/lab-yaml";
import { PostgresServer, startPostgres } from "../../testkit/postgres";

const LAB = "mhpg";
const synthDir = path.join(PROJECT_DIR, "cdktf.out", "labs", LAB);
const stackDir = path.join(synthDir, "stacks", "lab");

interface Run {
  status: number | null;
  output: string;
}

describe("a lab's state in PostgreSQL", () => {
  let pg: PostgresServer;
  let dir: string;

  function writeLab(state: Record<string, unknown>): void {
    fs.writeFileSync(path.join(dir, "lab.yaml"), stringify(testLab({ name: LAB, extra: { network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.71.0/24" }, state } })));
  }

  function btw(args: string[], env: Record<string, string> = {}): Promise<Run> {
    return new Promise((resolve) => {
      const child = spawn(path.join(PROJECT_DIR, "bin", "btw"), args, {
        cwd: dir,
        env: { ...process.env, BTW_CONFIG: path.join(dir, "lab.yaml"), PG_CONN_STR: pg.connStr, CI: "1", FORCE_COLOR: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.on("close", (status) => resolve({ status, output }));
    });
  }

  /**
   * Another run holding the lab's state lock, known to PostgreSQL as alice's: the very lock the
   * engine's pg backend takes (an advisory lock on the state's row id, or -1 while no state exists yet).
   */
  const HOLDER = "btw-img alice@laptop: btw up mhpg";

  function holdLock(seconds: number): { released: Promise<number>; release: () => void } {
    const key = "coalesce((SELECT id FROM btw_mhpg_lab.states WHERE name = 'default'), -1)";
    const child = spawn("psql", [pg.connStr, "-X", "-q", "-c", `SELECT pg_advisory_lock(${key})`, "-c", `SELECT pg_sleep(${seconds})`], {
      env: { ...process.env, PGAPPNAME: HOLDER },
      stdio: "ignore",
    });
    // A killed psql does not end its server session while pg_sleep runs (nor the lock): end it too.
    const release = () => {
      child.kill();
      pg.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${HOLDER}'`);
    };
    return { released: new Promise((resolve) => child.on("close", () => resolve(Date.now()))), release };
  }

  function lockHeld(): boolean {
    return pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").trim() !== "0";
  }

  /**
   * Whether a session other than the holder's has tried the lock, and so failed while it was held: the engine's pg
   * backend tries it with pg_try_advisory_lock (then, on a state row, gives back the creation lock:
   * pg_advisory_unlock(-1)), and an idle session's last query stays in pg_stat_activity while it waits to try again.
   */
  function lockTried(): boolean {
    const tried = pg.sql(
      `SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND application_name <> '${HOLDER}' AND state = 'idle' ` +
        `AND (query LIKE '%pg_try_advisory_lock(%' OR query LIKE '%pg_advisory_unlock(-1)%')`,
    );
    return tried.trim() !== "0";
  }

  /** Polls until the engine of run has tried the held lock (true) or run has ended without trying it (false). */
  async function untilLockTried(run: Promise<unknown>, timeoutMs: number): Promise<boolean> {
    let ended = false;
    void run.then(() => (ended = true));
    for (const deadline = Date.now() + timeoutMs; !ended && Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      if (lockTried()) return true;
    }
    return false;
  }

  async function untilLockHeld(): Promise<void> {
    for (let i = 0; i < 60 && !lockHeld(); i++) await new Promise((r) => setTimeout(r, 500));
    expect(lockHeld()).toBe(true);
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-pgstate-"));
    fs.rmSync(synthDir, { recursive: true, force: true });
    pg = await startPostgres("mh");
  }, 120_000);

  afterAll(() => {
    pg?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(synthDir, { recursive: true, force: true });
  });

  test("`btw diff` keeps the lab stack's state in its own schema; the password is in no file the synth or the engine wrote", async () => {
    writeLab({ backend: "pg" });
    const diff = await btw(["diff"]);
    expect({ status: diff.status, tail: diff.status === 0 ? "" : diff.output.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(diff.output).toContain("btw-mhpg-vm1");
    expect(pg.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'btw_mhpg_%'").trim()).toBe("btw_mhpg_lab");
    const backend = JSON.parse(fs.readFileSync(path.join(stackDir, "cdk.tf.json"), "utf8")).terraform.backend;
    expect(backend).toEqual({ pg: { schema_name: "btw_mhpg_lab" } });
    const holding = spawnSync("grep", ["-rlF", pg.password, synthDir], { encoding: "utf8" });
    expect(holding.stdout).toBe("");
    expect(diff.output).not.toContain(pg.password);
  }, 600_000);

  test("a run that meets another run's lock gives up at once, naming who holds it (state.lock_timeout 0), with no connection string in psql's arguments", async () => {
    writeLab({ backend: "pg", lock_timeout: 0 });
    // psql as btw runs it, its arguments recorded (every local user can read them in /proc).
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    const realPsql = spawnSync("sh", ["-c", "command -v psql"], { encoding: "utf8" }).stdout.trim();
    fs.writeFileSync(path.join(bin, "psql"), `#!/bin/sh\nprintf '%s\\n' "$*" >>${path.join(dir, "psql-args")}\nexec ${realPsql} "$@"\n`, { mode: 0o755 });
    const holder = holdLock(300);
    await untilLockHeld();
    const diff = await btw(["diff"], { PATH: `${bin}:${process.env.PATH}` });
    holder.release();
    const psqlArgs = fs.readFileSync(path.join(dir, "psql-args"), "utf8");
    expect(psqlArgs).toContain("-v schema=btw_mhpg_lab");
    expect(psqlArgs).not.toContain(pg.password);
    expect(psqlArgs).not.toContain("postgres://");
    expect(diff.status).not.toBe(0);
    expect(diff.output).toContain("Error acquiring the state lock");
    expect(diff.output).toMatch(/btw: state btw_mhpg_lab is locked by btw-img alice@laptop: btw up mhpg \(connected from 127\.0\.0\.1 since /);
    expect(diff.output).not.toContain(pg.password);
    await holder.released;
  }, 600_000);

  test("with state.lock_timeout it waits for the lock and then plans", async () => {
    writeLab({ backend: "pg", lock_timeout: 300 });
    // Held until the engine has met it, however long synth and init take.
    const holder = holdLock(500);
    await untilLockHeld();
    const running = btw(["diff"]).then((run) => ({ ...run, finished: Date.now() }));
    const met = await untilLockTried(running, 400_000);
    holder.release();
    const released = await holder.released;
    const diff = await running;
    expect({ met, tail: met ? "" : diff.output.slice(-3000) }).toEqual({ met: true, tail: "" });
    expect({ status: diff.status, tail: diff.status === 0 ? "" : diff.output.slice(-3000) }).toEqual({ status: 0, tail: "" });
    // It could only plan once the holder let go, and the engine said it was waiting (multi-host.test.ts reads this too).
    expect(diff.finished).toBeGreaterThan(released);
    expect(diff.output).toContain("Acquiring state lock. This may take a few moments");
    expect(diff.output).toContain("btw-mhpg-vm1");
  }, 600_000);

  test("`btw` refuses a pg lab without a connection string before running the engine", async () => {
    writeLab({ backend: "pg" });
    const run = await btw(["diff"], { PG_CONN_STR: "" });
    expect(run.status).toBe(1);
    expect(run.output).toContain("keeps its state in PostgreSQL (state.backend: pg): set PG_CONN_STR or state.conn_str");
  }, 120_000);
});
