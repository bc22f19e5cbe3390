// A real IPMI BMC simulator (OpenIPMI's ipmi_sim) on 127.0.0.1, for a test:
// one BMC, user admin with the given password, its chassis (power, next boot
// device) kept in a folder by __tests__/fixtures/bmc-chassis.sh, which also drives
// a libvirt domain when one is named. stop() ends it; the folder is the caller's.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as dgram from "dgram";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../lib/paths";

const CHASSIS = path.join(PROJECT_DIR, "__tests__", "fixtures", "bmc-chassis.sh");

/** A UDP port on 127.0.0.1 that nothing is bound to right now. */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.on("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

export class BmcSim {
  private constructor(
    readonly port: number,
    /** The chassis: power (0|1), boot (pxe, default, ...) and actions (each change, a line). */
    readonly chassisDir: string,
    private readonly child: ChildProcess,
  ) {}

  /** Starts the simulator with its files in DIR; with DOMAIN, its power is that libvirt domain's. */
  static async start(dir: string, password: string, domain?: string): Promise<BmcSim> {
    const port = await freeUdpPort();
    const chassisDir = path.join(dir, "chassis");
    fs.mkdirSync(path.join(dir, "state"), { recursive: true });
    fs.mkdirSync(chassisDir, { recursive: true });
    if (domain) fs.writeFileSync(path.join(chassisDir, "domain"), domain);
    // The password is the simulator's own configuration (0600), as a real BMC keeps it.
    fs.writeFileSync(
      path.join(dir, "lan.conf"),
      [
        `name "btwbmc${port}"`,
        "set_working_mc 0x20",
        "  startlan 1",
        `    addr 127.0.0.1 ${port}`,
        "    priv_limit admin",
        ...["callback", "user", "operator", "admin"].map((level) => `    allowed_auths_${level} none md2 md5 straight`),
        "    guid a123456789abcdefa123456789abcdef",
        "  endlan",
        `  chassis_control "${CHASSIS} ${chassisDir}"`,
        `  user 2 true "admin" "${password}" admin 10 none md2 md5 straight`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    fs.writeFileSync(path.join(dir, "bmc.emu"), ["mc_setbmc 0x20", "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr", "mc_enable 0x20", ""].join("\n"));
    const child = spawn("ipmi_sim", ["-c", path.join(dir, "lan.conf"), "-f", path.join(dir, "bmc.emu"), "-s", path.join(dir, "state"), "-n"], { stdio: "ignore" });
    // For a run that is killed before stop (testkit/held.ts).
    fs.writeFileSync(path.join(dir, "ipmi_sim.pid"), `${child.pid}\n`);
    const sim = new BmcSim(port, chassisDir, child);
    // Up once it answers a session (ipmitool with the right password).
    for (let tries = 0; ; tries++) {
      if (child.exitCode !== null) throw new Error(`ipmi_sim exited (${child.exitCode}) before answering on 127.0.0.1:${port}`);
      const probe = spawnSync("ipmitool", ["-I", "lanplus", "-H", "127.0.0.1", "-p", String(port), "-U", "admin", "-E", "-C", "3", "-N", "1", "-R", "1", "mc", "info"], {
        env: { ...process.env, IPMI_PASSWORD: password },
        encoding: "utf8",
      });
      if (probe.status === 0) return sim;
      if (tries >= 20) {
        await sim.stop();
        throw new Error(`ipmi_sim on 127.0.0.1:${port} did not answer: ${probe.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** What the chassis was told, a line each ("power 1", "boot pxe"). */
  actions(): string[] {
    const file = path.join(this.chassisDir, "actions");
    return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  }

  /** Its pid file (in the folder it was started with). */
  get pidFile(): string {
    return path.join(path.dirname(this.chassisDir), "ipmi_sim.pid");
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const ended = new Promise((resolve) => this.child.on("exit", resolve));
    this.child.kill("SIGTERM");
    await ended;
  }
}
