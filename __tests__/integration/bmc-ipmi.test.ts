// A machine's BMC over IPMI (lib/bmc, `btw metal power`), against a real BMC
// simulator (OpenIPMI's ipmi_sim, testkit/bmc-sim.ts) on 127.0.0.1 whose chassis
// is a folder: power on, off, cycle and status, the next boot from the network;
// the password only from the variable or the 0600 file the config names, and in
// no program's arguments; a wrong password or a bad source named.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { bmcDriver } from "../../lib/bmc/driver";
import { loadConfig } from "../../lib/config/config";
import { configProblems } from "../helpers/test-config";
import { PROJECT_DIR } from "../../lib/paths";
import { BmcSim } from "../../testkit/bmc-sim";
import { testLab } from "../../testkit/lab-yaml";

// IPMI 2.0 passwords have at most 20 bytes.
const PASSWORD = `bmc${process.pid}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bmc-"));
let sim: BmcSim;

/** The lab config with one machine whose BMC is the simulator (password source as given). */
function labFile(bmc: Record<string, unknown>, name = "lab.yaml"): string {
  const lab = testLab({ name: "btwbmc" });
  const file = path.join(work, name);
  const machine = { name: "m1", mac: "52:54:00:98:00:01", bmc: { driver: "ipmi", address: `127.0.0.1:${sim.port}`, username: "admin", cipher_suite: 3, ...bmc } };
  fs.writeFileSync(file, stringify({ ...lab, baremetal: { pxe: { interface: "br50", address: "10.50.0.1" }, machines: [machine] } }));
  return file;
}

/** `btw metal ...` with PATH's ipmitool replaced by one that records its arguments, then runs the real one. */
function btw(args: string[], config: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(path.join(PROJECT_DIR, "bin", "btw"), ["metal", ...args], {
    encoding: "utf8",
    env: { ...process.env, BTW_CONFIG: config, PATH: `${path.join(work, "bin")}:${process.env.PATH}`, ...env },
  });
  // Its stderr also has the host setup's lines.
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}${result.stderr}` };
}

beforeAll(async () => {
  sim = await BmcSim.start(path.join(work, "sim"), PASSWORD);
  fs.mkdirSync(path.join(work, "bin"));
  const real = spawnSync("sh", ["-c", "command -v ipmitool"], { encoding: "utf8" }).stdout.trim();
  fs.writeFileSync(path.join(work, "bin", "ipmitool"), `#!/bin/sh\nprintf '%s\\n' "$*" >>${path.join(work, "ipmitool-args")}\nexec ${real} "$@"\n`, { mode: 0o755 });
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("btw metal power through IPMI (ipmi_sim)", () => {
  test("status, on, cycle and off reach the chassis, and status reports what the BMC says", () => {
    const config = labFile({ password_env: "BTW_TEST_BMC_PASSWORD" });
    const env = { BTW_TEST_BMC_PASSWORD: PASSWORD };
    expect(btw(["power", "m1", "status"], config, env)).toMatchObject({ status: 0, stdout: "m1: off\n" });
    expect(btw(["power", "m1", "on"], config, env)).toMatchObject({ status: 0, stdout: "m1: on\n" });
    expect(sim.actions()).toEqual(["power 1"]);
    // A cycle goes off and on again (the simulator powers on a second later).
    expect(btw(["power", "m1", "cycle"], config, env).status).toBe(0);
    expect(sim.actions().slice(1, 2)).toEqual(["power 0"]);
    expect(btw(["power", "m1", "off"], config, env)).toMatchObject({ status: 0, stdout: "m1: off\n" });
    expect(sim.actions()).toContain("power 1");
    expect(sim.actions()[sim.actions().length - 1]).toBe("power 0");
    // A cycle of a machine that is off powers it on.
    const before = sim.actions().length;
    expect(btw(["power", "m1", "cycle"], config, env)).toMatchObject({ status: 0, stdout: "m1: on\n" });
    expect(sim.actions().slice(before)).toEqual(["power 1"]);
    // The password reached ipmitool through its environment only.
    const args = fs.readFileSync(path.join(work, "ipmitool-args"), "utf8");
    expect(args).toContain("-E");
    expect(args).not.toContain(PASSWORD);
  }, 120_000);

  test("the next boot from the network, in the firmware's mode", async () => {
    const machine = loadConfig(labFile({ password_env: "BTW_TEST_BMC_PASSWORD", firmware: "uefi" })).baremetal.machines[0];
    await bmcDriver(machine, { BTW_TEST_BMC_PASSWORD: PASSWORD }).bootOnceFromNetwork();
    expect(sim.actions()[sim.actions().length - 1]).toBe("boot pxe");
  }, 60_000);

  test("the password from a 0600 file; a file others can read is refused, naming the key", () => {
    const file = path.join(work, "bmc-password");
    fs.writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    const config = labFile({ password_file: file }, "file.yaml");
    expect(btw(["power", "m1", "status"], config)).toMatchObject({ status: 0, stdout: expect.stringMatching(/^m1: (on|off)\n$/) });
    fs.chmodSync(file, 0o644);
    const open = btw(["power", "m1", "status"], config);
    expect(open.status).toBe(1);
    expect(open.output).toContain(`${file} (bmc.password_file) must be this user's and readable by no one else: chmod 600 ${file}`);
  }, 60_000);

  test("a missing variable and a wrong password are named, and the password is in no message", () => {
    const config = labFile({ password_env: "BTW_TEST_BMC_PASSWORD" });
    const unset = btw(["power", "m1", "status"], config, { BTW_TEST_BMC_PASSWORD: "" });
    expect(unset.status).toBe(1);
    expect(unset.output).toContain("the environment variable BTW_TEST_BMC_PASSWORD (bmc.password_env) is not set");
    const wrong = btw(["power", "m1", "on"], config, { BTW_TEST_BMC_PASSWORD: `${PASSWORD}-wrong` });
    expect(wrong.status).toBe(1);
    expect(wrong.output).toContain(`machine m1: the BMC at 127.0.0.1:${sim.port} (user admin) refused or did not answer 'ipmitool chassis power on'`);
    expect(wrong.output).not.toContain(PASSWORD);
    expect(btw(["power", "m1", "sideways"], config).status).toBe(2);
  }, 60_000);

  test("the config takes one password source, never the password itself", () => {
    const problems = (bmc: Record<string, unknown>) => configProblems(labFile(bmc, "bad.yaml"));
    expect(problems({})).toEqual([expect.stringContaining("baremetal.machines[0].bmc.password_env: give the password's source")]);
    expect(problems({ password_env: "A", password_file: "/root/x" })).toEqual([expect.stringContaining("bmc.password_env: give the password's source")]);
    expect(problems({ password_env: "A", password: "x" })).toEqual([expect.stringContaining("bmc: unknown key 'password'")]);
    expect(problems({ password_env: "lower-case" })).toEqual([expect.stringContaining("bmc.password_env: must be the name of an environment variable")]);
    expect(problems({ password_env: "A", ca_file: "/root/ca.pem" })).toEqual([expect.stringContaining("bmc.ca_file: is a key of driver redfish, not ipmi")]);
  });
});
