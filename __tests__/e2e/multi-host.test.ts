// A lab across two libvirt hosts, its state in PostgreSQL: vm1 on this machine's libvirtd,
// vm2 on a second libvirtd standing in for another hypervisor (its own socket and libvirt
// folders), reached over SSH to 127.0.0.1 (a real sshd with its own host key and a key the
// test made) and checked through its socket directly; the state in a real PostgreSQL (Debian's
// server). Two deploys of a change at once, as two checkouts would run them (the second host then
// reached through its socket): one waits for the other's lock (or is refused cleanly), the change
// is applied once and the next plan shows no change. Destroy leaves nothing on either daemon.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { virshUri } from "../../lib/config/libvirt-uri";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { planChanges } from "../../testkit/engine";
import { fixtureImage } from "../../testkit/fixture-image";
import { hold, holdStarted } from "../../testkit/held";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { testLab } from "../../testkit/lab-yaml";
import { guestExec, leftovers, virsh, virshNames } from "../../testkit/libvirt";
import { PostgresServer, startPostgres } from "../../testkit/postgres";
import { SecondLibvirtd, startSecondLibvirtd } from "../../testkit/second-libvirtd";
import { SshServer, startSshd } from "../../testkit/sshd";

const LAB = "mhlab";
const PREFIX = `btw-${LAB}`;
const SCHEMA = "btw_mhlab_lab";
// `btw` synthesizes into the checkout's cdktf.out/labs/<lab>.
const synthDir = path.join(PROJECT_DIR, "cdktf.out", "labs", LAB);

interface Run {
  status: number | null;
  output: string;
  seconds: number;
}

function collect(command: string, args: string[], cwd: string, env: Record<string, string>, log: string): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, CI: "1", FORCE_COLOR: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("close", (status) => {
      fs.appendFileSync(log, `\n$ ${path.basename(command)} ${args.join(" ")}\n${output}`);
      resolve({ status, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

describe("a two-host lab with its state in PostgreSQL", () => {
  let dir: string;
  let server: FileServer;
  let pg: PostgresServer;
  let second: SecondLibvirtd;
  let sshd: SshServer;
  let sshUri: string;
  let lab: Record<string, unknown>;
  // A second checkout's synth folder and engine folder (another person, a CI runner).
  const other = new LabWorkspace();
  const releases: (() => void)[] = [];

  const btwEnv = () => ({ BTW_CONFIG: path.join(dir, "lab.yaml"), BTW_STATE_DIR: path.join(dir, "state"), PG_CONN_STR: pg.connStr });
  const btw = (args: string[]) => collect(path.join(PROJECT_DIR, "bin", "btw"), args, dir, btwEnv(), path.join(dir, "btw.log"));
  /** What `btw` sets for the engine, for the other checkout's plain `cdktf deploy`. */
  const otherDeploy = () =>
    collect(
      "npx",
      ["cdktf", "deploy", "lab", "--auto-approve", "--skip-provider-lock", "--output", other.outdir],
      PROJECT_DIR,
      {
        BTW_CONFIG: other.configFile,
        BTW_STATE_DIR: path.join(other.dir, "state"),
        PG_CONN_STR: pg.connStr,
        PGAPPNAME: "btw-img ci@runner: cdktf deploy lab",
        TF_CLI_ARGS_plan: "-lock-timeout=2400s",
        TF_CLI_ARGS_apply: "-lock-timeout=2400s",
      },
      path.join(other.dir, "cdktf.log"),
    );
  const writeLab = (config: Record<string, unknown>) => {
    fs.writeFileSync(path.join(dir, "lab.yaml"), stringify(config));
    fs.writeFileSync(other.configFile, stringify(config));
  };
  /** What the second host saw of vm2: its state, its network's leases, the ends of its QEMU log and console. */
  const vm2Diagnostics = () => {
    const tail = (file: string, lines = 30) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8").split(/\r?\n/).slice(-lines).join("\n") : `(no ${file})`);
    const ask = (args: string[]) => spawnSync("virsh", ["-c", second.uri, ...args], { encoding: "utf8" });
    const logs = second.private("/var/log/libvirt/qemu");
    return [
      `domstate: ${ask(["domstate", `${PREFIX}-vm2`, "--reason"]).stdout.trim()}`,
      `leases:\n${ask(["net-dhcp-leases", `${LAB}-net-mh2`]).stdout.trim()}`,
      `qemu log:\n${tail(path.join(logs, `${PREFIX}-vm2.log`), 8)}`,
      `console:\n${tail(path.join(logs, `${PREFIX}-vm2-console.log`))}`,
    ].join("\n");
  };
  // Each later check needs the deployed lab: without it, each says so at once instead of waiting out its timeouts.
  let deployed = false;
  const names = (uri: string) =>
    virsh(["list", "--all", "--name"], uri)
      .split("\n")
      .map((s) => s.trim())
      .filter(Boolean);

  beforeAll(async () => {
    releases.push(hold("multi-host", { libvirtPrefixes: [PREFIX, `${LAB}-net`] }));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-multihost-"));
    fs.rmSync(synthDir, { recursive: true, force: true });
    // The folders a killed run would leave besides what the daemons hold.
    releases.push(holdStarted("multi-host-folders", { paths: [dir, synthDir, other.dir, path.join(process.env.BTW_CACHE_DIR as string, "labs", LAB)] }));
    server = await serveDirectory(fixtureImage("trixie").dir);
    pg = await startPostgres("mh");
    releases.push(holdStarted("multi-host-postgres", { pidFiles: [pg.pidFile], paths: [pg.dir] }));
    second = await startSecondLibvirtd("mh");
    const run = second.private("/run/libvirt");
    // What outlives the daemon when a run is killed: its QEMU and its network's dnsmasq.
    releases.push(
      holdStarted("multi-host-libvirtd", {
        pidFiles: [path.join(run, "qemu", `${PREFIX}-vm2.pid`), path.join(run, "network", `${LAB}-net-mh2.pid`), second.pidFile],
        paths: [second.dir],
      }),
    );
    sshd = await startSshd("mh");
    releases.push(holdStarted("multi-host-sshd", { pidFiles: [sshd.pidFile], paths: [sshd.dir, ...sshd.madePaths] }));
    sshUri = `qemu+ssh://root@127.0.0.1:${sshd.port}/system?keyfile=${sshd.clientKey}&knownhosts=${sshd.knownHosts}&socket=${second.socket}`;
    lab = testLab({
      name: LAB,
      imageBaseUrl: server.baseUrl,
      vms: [{ name: "vm1" }, { name: "vm2", host: "mh2" }],
      extra: {
        libvirt: { uri: "qemu:///system", accel: "tcg", firmware: "bios" },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.72.0/24" },
        hosts: [{ name: "mh2", uri: sshUri, network: { cidr: "10.213.73.0/24" } }],
        // Two TCG guests boot at once here (about 2 minutes); a guest that has not answered in 10 fails the run
        // with its console rather than holding CI.
        readiness: { timeout: 600 },
        state: { backend: "pg", lock_timeout: 2400 },
        baremetal: { output_dir: path.join(dir, "artifacts") },
      },
    });
    writeLab(lab);
  }, 1_500_000);

  afterAll(async () => {
    if (pg && second && sshd) await btw(["down"]);
    for (const release of releases.reverse()) release();
    await server?.close();
    other.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(synthDir, { recursive: true, force: true });
  }, 900_000);

  test("`btw up` deploys it: both VMs ready, vm1 on this machine's daemon, vm2 only on the second (over SSH and through its socket)", async () => {
    const up = await btw(["up"]);
    expect({ status: up.status, tail: up.status === 0 ? "" : `${up.output.slice(-3000)}\n${vm2Diagnostics()}` }).toEqual({ status: 0, tail: "" });
    deployed = true;
    const outputs = JSON.parse(fs.readFileSync(path.join(synthDir, "lab-outputs.json"), "utf8")).lab;
    expect(outputs["vm-vm1"].vm).toMatchObject({ domain: `${PREFIX}-vm1` });
    expect(outputs["vm-vm2"].vm).toMatchObject({ domain: `${PREFIX}-vm2` });
    expect(outputs["vm-vm1"].vm.address[0]).toMatch(/^10\.213\.72\.\d+$/);
    expect(outputs["vm-vm2"].vm.address[0]).toMatch(/^10\.213\.73\.\d+$/);

    expect(names("qemu:///system").filter((n) => n.startsWith(PREFIX))).toEqual([`${PREFIX}-vm1`]);
    expect(names(second.uri)).toEqual([`${PREFIX}-vm2`]);
    expect(names(virshUri(sshUri))).toEqual([`${PREFIX}-vm2`]);
    expect(second.objects().sort()).toEqual([`domain ${PREFIX}-vm2`, `network ${LAB}-net-mh2`, `pool ${PREFIX}.mh2`]);
    expect(virshNames("net-list")).not.toContain(`${LAB}-net-mh2`);
    // The second host got its own base volume, uploaded through its connection.
    expect(virsh(["vol-list", `${PREFIX}.mh2`], second.uri)).toMatch(new RegExp(`${PREFIX}-base-minimal-`));
    // Ready is what each guest says (the outputs' `ready` is a constant): cloud-init done in both, vm2 asked
    // through the second daemon's agent channel; each its own hostname.
    expect(guestExec(`${PREFIX}-vm1`, "/usr/bin/cloud-init", ["status"]).stdout).toContain("status: done");
    expect(guestExec(`${PREFIX}-vm2`, "/usr/bin/cloud-init", ["status"], second.uri).stdout).toContain("status: done");
    expect(guestExec(`${PREFIX}-vm2`, "/bin/hostname", [], second.uri).stdout.trim()).toBe("vm2");
    expect(guestExec(`${PREFIX}-vm1`, "/bin/hostname", []).stdout.trim()).toBe("vm1");
  }, 2_700_000);

  test("its state is in PostgreSQL, in the lab's schema: no local state file, the password in no file", () => {
    expect({ deployed }).toEqual({ deployed: true });
    const state = JSON.parse(pg.sql(`SELECT data FROM ${SCHEMA}.states WHERE name = 'default'`));
    const domains = state.resources.filter((r: any) => r.type === "libvirt_domain").flatMap((r: any) => r.instances.map((i: any) => i.attributes.name));
    expect(domains.sort()).toEqual([`${PREFIX}-vm1`, `${PREFIX}-vm2`]);
    expect(fs.existsSync(path.join(dir, "state")) ? fs.readdirSync(path.join(dir, "state")) : []).toEqual([]);
    for (const folder of [synthDir, dir]) {
      const holding = spawnSync("grep", ["-rlF", pg.password, folder], { encoding: "utf8" });
      expect({ folder, files: holding.stdout }).toEqual({ folder, files: "" });
    }
  });

  test("`btw status` finds each VM through its own host", async () => {
    expect({ deployed }).toEqual({ deployed: true });
    const status = await btw(["status"]);
    expect(status.status).toBe(0);
    const rows = status.output
      .trim()
      .split("\n")
      .slice(-2)
      .map((line) => line.split(/\s+/));
    expect(rows.map((row) => row.slice(0, 4))).toEqual([
      ["vm1", `${PREFIX}-vm1`, "default", "running"],
      ["vm2", `${PREFIX}-vm2`, "mh2", "running"],
    ]);
    expect(rows[1][4]).toMatch(/^10\.213\.73\.\d+\/24$/);
  }, 300_000);

  test("two deploys of a change at once (btw here, cdktf in another checkout) meeting a held lock: both wait, the change is applied once, the next plan shows no change", async () => {
    expect({ deployed }).toEqual({ deployed: true });
    // The change: the second host reached through its socket instead of over SSH. The same daemon
    // holds the same objects, so only its host check runs again; nothing is recreated.
    writeLab({ ...lab, hosts: [{ name: "mh2", uri: second.uri, network: { cidr: "10.213.73.0/24" } }] });
    const bootId = guestExec(`${PREFIX}-vm2`, "/bin/cat", ["/proc/sys/kernel/random/boot_id"], second.uri).stdout.trim();
    // Left alone, one run may plan after the other has already applied and let go (seen: 9 s and 11 s runs that
    // never met). So the state's lock is held here, as a third run would hold it, until both engines have tried it;
    // let go, one of them takes it and applies while the other waits for it, then finds nothing to do.
    const holderName = "btw-img multi-host test: holding the state lock";
    const holder = spawn("psql", [pg.connStr, "-X", "-q", "-c", `SELECT pg_advisory_lock((SELECT id FROM ${SCHEMA}.states WHERE name = 'default'))`, "-c", "SELECT pg_sleep(900)"], {
      env: { ...process.env, PGAPPNAME: holderName },
      stdio: "ignore",
    });
    const letGo = () => {
      holder.kill();
      // A killed psql does not end its server session while pg_sleep runs (nor the lock): end it too.
      pg.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${holderName}'`);
    };
    let runs: Awaited<ReturnType<typeof btw>>[];
    let met = false;
    try {
      const sql = (query: string) => Number(pg.sql(query).trim());
      for (let i = 0; i < 120 && sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") === 0; i++) await new Promise((r) => setTimeout(r, 500));
      let ended = 0;
      const running = Promise.all([btw(["up"]), otherDeploy()].map((run) => run.finally(() => ended++)));
      // The engine's pg backend tries the lock with pg_try_advisory_lock (the state row's and the creation lock -1),
      // gives back -1 with pg_advisory_unlock(-1) when the row's is held, and waits between tries: while the test holds
      // the lock, an idle session whose last query was one of those is an engine waiting for it.
      const waiting = () =>
        sql(
          `SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND application_name <> '${holderName}' AND state = 'idle' ` +
            `AND (query LIKE '%pg_try_advisory_lock(%' OR query LIKE '%pg_advisory_unlock(-1)%')`,
        );
      for (const deadline = Date.now() + 600_000; ended === 0 && Date.now() < deadline && !met; await new Promise((r) => setTimeout(r, 250))) met = waiting() >= 2;
      letGo();
      runs = await running;
    } finally {
      letGo();
    }
    expect(met).toBe(true);
    const summary = runs.map((run) => ({
      status: run.status,
      seconds: Math.round(run.seconds),
      applied: /host-check-mh2[^\n]*Creation complete/.test(run.output),
      // The engine says this only when taking the lock takes longer than 0.4 s: it met a held lock and tried again.
      waited: /Acquiring state lock\. This may take a few moments/.test(run.output),
      locked: /Error acquiring the state lock|Saved plan is stale/.test(run.output),
    }));
    console.log(`two deploys at once: ${JSON.stringify(summary)}`);
    for (const [i, run] of runs.entries()) {
      // Each ends cleanly: it applied, or it gave up on the lock (or on a plan the other made stale), saying so.
      const clean = run.status === 0 || summary[i].locked;
      expect({ run: i, clean, tail: clean ? "" : run.output.slice(-4000) }).toEqual({ run: i, clean: true, tail: "" });
      expect(run.output).not.toContain(pg.password);
      expect(run.output).not.toMatch(/vm-vm\d_domain_\w+[^\n]*(Destroying|Creating)/);
    }
    // Planned against one state, never forked: the change was applied by exactly one of them.
    expect(summary.filter((s) => s.applied)).toHaveLength(1);
    // And they met: both waited for the lock, and the one that did not apply found the change applied once it had it.
    expect(summary.map((s) => s.waited)).toEqual([true, true]);
    expect(summary.filter((s) => !s.applied && (s.waited || s.locked))).toHaveLength(1);
    expect(names(second.uri)).toEqual([`${PREFIX}-vm2`]);
    expect(guestExec(`${PREFIX}-vm2`, "/bin/cat", ["/proc/sys/kernel/random/boot_id"], second.uri).stdout.trim()).toBe(bootId);

    // Planned again from either checkout against the one state: nothing to do.
    expect((await other.cdktf(["synth"])).status).toBe(0);
    const env = { PG_CONN_STR: process.env.PG_CONN_STR };
    process.env.PG_CONN_STR = pg.connStr;
    try {
      for (const stackDir of [path.join(synthDir, "stacks", "lab"), other.stackDir()]) {
        const changes = planChanges(stackDir);
        expect(changes.length).toBeGreaterThan(10);
        expect({ stackDir, changed: changes.filter((c) => c.actions.join() !== "no-op") }).toEqual({ stackDir, changed: [] });
      }
    } finally {
      if (env.PG_CONN_STR === undefined) delete process.env.PG_CONN_STR;
      else process.env.PG_CONN_STR = env.PG_CONN_STR;
    }
  }, 3_600_000);

  test("`btw down` leaves nothing of the lab on either daemon, and an empty state", async () => {
    const down = await btw(["down"]);
    // A failure names its errors (wherever they are in the output of both stacks) and the end.
    const errors = down.output.split("\n").filter((line) => /Error|error:/.test(line));
    expect({ status: down.status, errors: down.status === 0 ? [] : errors, tail: down.status === 0 ? "" : down.output.slice(-2000) }).toEqual({ status: 0, errors: [], tail: "" });
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(second.objects()).toEqual([]);
    expect(fs.existsSync(path.join(second.private("/var/lib/libvirt"), "btw-img", `${LAB}.mh2`))).toBe(false);
    const state = JSON.parse(pg.sql(`SELECT data FROM ${SCHEMA}.states WHERE name = 'default'`));
    expect(state.resources.filter((r: any) => r.mode === "managed" && r.type.startsWith("libvirt_"))).toEqual([]);
  }, 900_000);
});
