// btw: the everyday commands for a lab (lab.yaml, or the file in BTW_CONFIG),
// started by bin/btw. Each command is what the npm scripts run, after host setup.
import { spawnSync, SpawnSyncOptions } from "child_process";
import * as path from "path";
import * as fs from "fs";
import { labInfo, LabInfo, LabVm } from "../lib/cli/lab-info";
import { consoleHostKeys, knownHosts } from "../lib/cli/ssh";
import { ConnStrError, pgEnvironment } from "../lib/cli/pg-env";
import { ConfigError, loadConfig } from "../lib/config/config";
import { LOGIN_KEY, PROJECT_DIR } from "../lib/paths";

const USAGE = `usage: btw COMMAND [ARGS]

Commands for the lab in lab.yaml (or the file BTW_CONFIG names):
  up               build the images and boot the lab (cdktf deploy lab)
  plan [ARGS]      write the plan summary reviewers read (exit 2: changes pending)
  diff             the engine's own plan of the lab (cdktf diff lab)
  down [--purge]   destroy the lab; --purge also clears the image cache
  console VM       attach to a VM's serial console (leave with Ctrl+])
  ssh VM [-- CMD]  log in to a VM (or run CMD there) as the lab's first user
  status           the lab's VMs with their state and address
  metal status     the bare-metal machines' states and progress (metal inventory NAME: hardware)
  metal reinstall NAME  restore the bare-metal machine NAME again at its next network boot
  metal release NAME [--erase quick|full]  stop serving it; erase its disks
  metal power NAME on|off|cycle|status  its power, through its BMC (baremetal.machines[].bmc)

\`btw COMMAND --help\` describes a command.`;

const HELP: Record<string, string> = {
  up: `usage: btw up

Builds what is missing (cloud image, customized images, seeds) and boots the
lab's VMs, waiting until cloud-init is done in each. Outputs (per VM: name,
address, console log) go to cdktf.out/labs/<lab name>/lab-outputs.json.`,
  diff: `usage: btw diff

Shows the engine's plan for the lab (cdktf diff lab): what a deploy would do.`,
  down: `usage: btw down [--purge]

Destroys every VM, volume, seed, network and pool of the lab, and its
bare-metal stack (the PXE server stops; installed machines stay recorded).
  --purge   also clear the image cache (base and customized images)`,
  console: `usage: btw console VM

Attaches to the serial console of the lab's VM (libvirt domain btw-<lab>-<VM>).
Leave with Ctrl+].`,
  ssh: `usage: btw ssh VM [-- COMMAND...]

Logs in to the lab's VM over SSH (or runs COMMAND there) as the lab's first user
(users[0]; without users, the image's default user debian), with the project's
login key (.btw/ssh/id_ed25519, made by setup) when that user lists no keys of its
own. The VM's host keys are taken from what its first boot printed on its serial
console, so nothing else can answer in its place.`,
  status: `usage: btw status

Lists the lab's VMs with their libvirt domain, host (hosts[].name), state and IPv4 address.`,
  metal: `usage: btw metal status [--json]
       btw metal inventory NAME [--json]
       btw metal reinstall NAME
       btw metal release NAME [--erase quick|full]
       btw metal power NAME on|off|cycle|status

status: each bare-metal machine (baremetal.machines) with its state as its
deploy environment reported it (waiting, deploy-env-up, started, downloading,
writing, configuring, done, failed, kept), how far it is, since when, and its
last reports.
inventory: the hardware its deploy environment reported: disks (model, serial,
size, by-id path: the names the config's disks can take), NICs, CPUs, memory,
firmware and Secure Boot.
reinstall: forgets that the machine NAME is installed: its next network boot
restores its image again, once, replacing the btw-img install its disks hold
(without a reinstall, a restore never overwrites one); a machine with a BMC is
then set to boot from the network once, powered on or cycled, and followed
until done.
release: the machine is not served any more (no disk written); with --erase its
next network boot erases its disks (quick: signatures, tables, the first and
last MiB of each partition and disk; full: discard, else zeroes), reports
released and powers off; a machine with a BMC is powered for it, followed, and
powered off. btw metal reinstall installs it again.
power: powers NAME on, off or through a cycle (on when it is off), or prints its
power state, through its BMC (bmc: driver ipmi or redfish; the password from
bmc.password_env or bmc.password_file, never from the config).`,
};

/** A command's end: its exit status, after a message. */
class Exit extends Error {
  constructor(
    readonly status: number,
    message = "",
  ) {
    super(message);
  }
}

const usageError = (message: string, usage: string) => new Exit(2, `btw: ${message}\n${usage}`);
const wantsHelp = (args: string[]) => args[0] === "-h" || args[0] === "--help";
const TS_NODE = path.join(PROJECT_DIR, "node_modules", ".bin", "ts-node");

/** Runs a program with the terminal; its exit status. */
function run(command: string, args: string[], options: SpawnSyncOptions = {}): number {
  const result = spawnSync(command, args, { stdio: "inherit", ...options });
  if (result.error) throw new Exit(1, `btw: cannot run ${command}: ${result.error.message}`);
  return result.status ?? 1;
}

/** Host setup (idempotent, seconds when done), then the engine environment it wrote (.btw/env.sh), in this process. */
function prepare(): void {
  // Paths the user gave are relative to where btw was started; the commands run in the project.
  for (const name of ["BTW_CONFIG", "BTW_STATE_DIR"]) {
    const value = process.env[name];
    if (value && !path.isAbsolute(value)) process.env[name] = path.resolve(value);
  }
  process.chdir(PROJECT_DIR);
  const setup = run("sh", ["scripts/host/setup-host.sh", "--quiet"]);
  if (setup !== 0) throw new Exit(setup);
  // The file is the npm scripts' too: read what it exports by letting sh source it.
  const env = spawnSync("sh", ["-c", ". ./.btw/env.sh && env -0"], { encoding: "utf8" });
  if (env.status !== 0) throw new Exit(1, `btw: cannot read .btw/env.sh: ${env.stderr.trim()}`);
  for (const entry of env.stdout.split("\0")) {
    const equals = entry.indexOf("=");
    if (equals > 0) process.env[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
}

/** The lab of the config; a lab whose state is in PostgreSQL makes the engine wait for another run's lock. */
function readLab(command: string): LabInfo {
  const lab = labInfo(loadConfig());
  const { state } = lab;
  if (state.backend !== "pg") return lab;
  if (!process.env.PG_CONN_STR && !state.connStr) {
    throw new Exit(1, `btw: lab ${lab.name} keeps its state in PostgreSQL (state.backend: pg): set PG_CONN_STR or state.conn_str`);
  }
  // PostgreSQL knows each run by who started it (state-lock-holder.sh names it when a run gives up).
  const user = process.env.USER || spawnSync("id", ["-un"], { encoding: "utf8" }).stdout.trim();
  const host = spawnSync("hostname", { encoding: "utf8" }).stdout.trim();
  process.env.PGAPPNAME = `btw-img ${user}@${host}: btw ${command} ${lab.name}`;
  for (const engineCommand of ["plan", "apply"]) {
    const name = `TF_CLI_ARGS_${engineCommand}`;
    process.env[name] = `${process.env[name] ?? ""} -lock-timeout=${state.lockTimeout}s`;
  }
  return lab;
}

/** Runs a cdktf command; when it fails on a lab whose state is in PostgreSQL, names who holds its lock. */
function runCdktf(lab: LabInfo, args: string[]): number {
  const status = run("cdktf", args);
  if (status !== 0 && lab.state.backend === "pg") {
    const schemas = lab.state.schemas.flatMap((schema) => ["--schema", schema]);
    // psql gets the connection as libpq's environment, never as an argument.
    const { PG_CONN_STR: connStr = lab.state.connStr, ...env } = process.env;
    let connection: Record<string, string>;
    try {
      connection = pgEnvironment(connStr || lab.state.connStr);
    } catch (error) {
      if (!(error instanceof ConnStrError)) throw error;
      console.error(`btw: cannot name who holds the lock: PG_CONN_STR or state.conn_str: ${error.message}`);
      return status;
    }
    const holders = spawnSync("sh", ["scripts/host/state-lock-holder.sh", ...schemas], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...env, ...connection },
    }).stdout.trim();
    if (holders) {
      console.error(`btw: ${holders}; another run of this lab is under way: wait for it (state.lock_timeout: ${lab.state.lockTimeout} s) or try again`);
    }
  }
  return status;
}

function noArguments(command: string, args: string[]): void {
  if (args.length > 0) throw usageError(`${command}: unexpected argument: ${args[0]}`, HELP[command]);
}

function up(args: string[]): number {
  noArguments("up", args);
  prepare();
  const lab = readLab("up");
  return runCdktf(lab, ["deploy", "lab", "--output", lab.synthDir, "--auto-approve", "--skip-provider-lock", "--outputs-file", path.join(lab.synthDir, "lab-outputs.json")]);
}

function diff(args: string[]): number {
  noArguments("diff", args);
  prepare();
  const lab = readLab("diff");
  return runCdktf(lab, ["diff", "lab", "--output", lab.synthDir, "--skip-provider-lock"]);
}

function plan(args: string[]): number {
  const planTs = path.join(PROJECT_DIR, "bin", "plan.ts");
  if (args.some((arg) => arg === "-h" || arg === "--help")) return run(TS_NODE, ["--transpile-only", planTs, "--help"]);
  prepare();
  // plan.ts reports a bad config itself; a valid one's state lock is waited for as a deploy's is.
  try {
    readLab("plan");
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
  }
  return run(TS_NODE, ["--transpile-only", planTs, ...args]);
}

function down(args: string[]): number {
  for (const arg of args) if (arg !== "--purge") throw usageError(`down: unknown argument: ${arg}`, HELP.down);
  prepare();
  const lab = readLab("down");
  const status = runCdktf(lab, ["destroy", "baremetal", "lab", "--output", lab.synthDir, "--auto-approve", "--skip-provider-lock"]);
  if (status !== 0 || !args.includes("--purge")) return status;
  return run("sh", ["scripts/host/purge-cache.sh", "--cache-dir", process.env.BTW_CACHE_DIR as string]);
}

function vmOf(lab: LabInfo, name: string) {
  const vm = lab.vms.find((candidate) => candidate.name === name);
  if (!vm) throw new Exit(1, `btw: lab ${lab.name} has no VM '${name}' (its VMs: ${lab.vms.map((v) => v.name).join(" ")})`);
  return vm;
}

function console_(args: string[]): number {
  if (args.length !== 1) throw usageError("console: expected one VM name", HELP.console);
  prepare();
  const vm = vmOf(readLab("console"), args[0]);
  return run("virsh", ["-c", vm.uri, "console", vm.domain]);
}

/** The VM's IPv4 addresses with their prefix (10.0.0.5/24): DHCP leases know VMs on networks we create; ARP also finds them on bridges. */
function vmAddresses(vm: LabVm): string[] {
  for (const source of ["lease", "arp"]) {
    const listed = spawnSync("virsh", ["-c", vm.uri, "domifaddr", vm.domain, "--source", source], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const found =
      listed.status === 0
        ? listed.stdout
            .split("\n")
            .map((line) => line.trim().split(/\s+/))
            .filter((cells) => cells[2] === "ipv4")
            .map((cells) => cells[3])
        : [];
    if (found.length > 0) return found;
  }
  return [];
}

function domainState(vm: LabVm): string {
  const domstate = spawnSync("virsh", ["-c", vm.uri, "domstate", vm.domain], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return domstate.status === 0 ? domstate.stdout.trim() : "not created";
}

function status(args: string[]): number {
  noArguments("status", args);
  prepare();
  const lab = readLab("status");
  const row = (...cells: string[]) => console.log(`${cells[0].padEnd(16)} ${cells[1].padEnd(32)} ${cells[2].padEnd(12)} ${cells[3].padEnd(12)} ${cells[4]}`);
  row("VM", "DOMAIN", "HOST", "STATE", "ADDRESS");
  for (const vm of lab.vms) {
    const state = domainState(vm);
    row(vm.name, vm.domain, vm.host, state, (state === "running" ? vmAddresses(vm) : []).join(",") || "-");
  }
  return 0;
}

function ssh(args: string[]): number {
  const dash = args.indexOf("--");
  const [name, ...extra] = dash >= 0 ? args.slice(0, dash) : args;
  if (name === undefined || extra.length > 0) throw usageError("ssh: expected one VM name, then -- and a command if any", HELP.ssh);
  prepare();
  const lab = readLab("ssh");
  const vm = vmOf(lab, name);
  const state = domainState(vm);
  const [address] = (state === "running" ? vmAddresses(vm) : []).map((cidr) => cidr.replace(/\/\d+$/, ""));
  if (!address) throw new Exit(1, `btw: VM ${name} (${vm.domain}) is ${state === "running" ? "running but has no IPv4 address yet" : state}: btw status shows it; btw up deploys the lab`);
  const keys = vm.consoleLog && fs.existsSync(vm.consoleLog) ? consoleHostKeys(fs.readFileSync(vm.consoleLog, "utf8")) : [];
  const sshDir = path.dirname(LOGIN_KEY);
  fs.mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  let hostKeys: string[];
  // This login's own list of the VM's keys, gone after it.
  const file = path.join(sshDir, `known_hosts.${vm.domain}.${process.pid}`);
  if (keys.length > 0) {
    fs.writeFileSync(file, knownHosts(address, keys), { mode: 0o600 });
    hostKeys = ["-o", `UserKnownHostsFile=${file}`, "-o", "StrictHostKeyChecking=yes"];
  } else {
    // No console here (a VM on another host), or its first boot printed no keys: the first answer is kept.
    console.error(`btw: no host keys of ${name} on its console here: trusting the first answer from ${address} (kept in ${sshDir}/known_hosts)`);
    hostKeys = ["-o", `UserKnownHostsFile=${path.join(sshDir, "known_hosts")}`, "-o", "StrictHostKeyChecking=accept-new"];
  }
  const key = lab.login.key ? ["-i", lab.login.key, "-o", "IdentitiesOnly=yes"] : [];
  try {
    return run("ssh", [...key, ...hostKeys, "-o", "ConnectTimeout=15", `${lab.login.user}@${address}`, ...(dash >= 0 ? args.slice(dash + 1) : [])]);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function metal(args: string[]): number {
  if (!["status", "inventory", "reinstall", "release", "power"].includes(args[0])) {
    throw usageError("metal: expected 'status', 'inventory NAME', 'reinstall NAME', 'release NAME' or 'power NAME on|off|cycle|status'", HELP.metal);
  }
  prepare();
  return run(TS_NODE, ["--transpile-only", path.join(PROJECT_DIR, "bin", "metal.ts"), ...args]);
}

const COMMANDS: Record<string, (args: string[]) => number> = { up, plan, diff, down, console: console_, ssh, status, metal };

function main(argv: string[]): number {
  const [command, ...args] = argv;
  if (command === undefined) throw new Exit(2, USAGE);
  if (command === "-h" || command === "--help" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) throw new Exit(2, `btw: unknown command: ${command}\n${USAGE}`);
  if (HELP[command] && wantsHelp(args)) {
    console.log(HELP[command]);
    return 0;
  }
  return handler(args);
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  if (error instanceof Exit) {
    if (error.message) console.error(error.message);
    process.exitCode = error.status;
  } else if (error instanceof ConfigError) {
    console.error(`btw-img: ${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
