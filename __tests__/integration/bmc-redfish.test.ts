// A machine's BMC over Redfish (lib/bmc/redfish.ts, `btw metal power`), against
// testkit/redfish-sim.ts: a Redfish service on 127.0.0.1 that follows DMTF's
// ComputerSystem schema (it stands in for a vendor BMC, none runs here). Power
// through ComputerSystem.Reset, a one-time network boot through a Boot override
// PATCHed with the ETag (read again after a 412), TLS verified against the
// service's CA unless the config says otherwise, the password in no argument
// or message, the machine's system named when the BMC has several.
import execa from "execa";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { bmcDriver } from "../../lib/bmc/driver";
import { loadConfig } from "../../lib/config/config";
import { configProblems } from "../helpers/test-config";
import { PROJECT_DIR } from "../../lib/paths";
import { RedfishSim } from "../../testkit/redfish-sim";
import { testLab } from "../../testkit/lab-yaml";

const PASSWORD = `redfish-${process.pid}-secret`;
const ENV = { BTW_TEST_BMC_PASSWORD: PASSWORD };
const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-redfish-"));
let sim: RedfishSim;

/** The lab config with one machine whose BMC is the service (system node1, its CA, unless BMC says otherwise). */
function labFile(bmc: Record<string, unknown> = {}, name = "lab.yaml"): string {
  const file = path.join(work, name);
  const machine = {
    name: "m1",
    mac: "52:54:00:98:00:02",
    bmc: { driver: "redfish", address: `127.0.0.1:${sim.port}`, username: "admin", password_env: "BTW_TEST_BMC_PASSWORD", system: "node1", ca_file: sim.caFile, ...bmc },
  };
  for (const key of Object.keys(bmc)) if (bmc[key] === undefined) delete (machine.bmc as Record<string, unknown>)[key];
  fs.writeFileSync(file, stringify({ ...testLab({ name: "btwredfish" }), baremetal: { pxe: { interface: "br51", address: "10.51.0.1" }, machines: [machine] } }));
  return file;
}

async function btw(args: string[], config: string, env: NodeJS.ProcessEnv = ENV) {
  const result = await execa(path.join(PROJECT_DIR, "bin", "btw"), ["metal", ...args], { reject: false, env: { BTW_CONFIG: config, ...env } });
  return { status: result.exitCode, stdout: `${result.stdout}\n`, output: `${result.stdout}${result.stderr}` };
}

beforeAll(async () => {
  sim = await RedfishSim.start(path.join(work, "sim"), "admin", PASSWORD, { node1: undefined, node2: undefined });
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("btw metal power through Redfish", () => {
  test("status, on, cycle and off are ComputerSystem.Reset actions, and status is the system's PowerState", async () => {
    const config = labFile();
    expect(await btw(["power", "m1", "status"], config)).toMatchObject({ status: 0, stdout: "m1: off\n" });
    expect(await btw(["power", "m1", "on"], config)).toMatchObject({ status: 0, stdout: "m1: on\n" });
    expect(await btw(["power", "m1", "cycle"], config)).toMatchObject({ status: 0, stdout: "m1: on\n" });
    expect(await btw(["power", "m1", "off"], config)).toMatchObject({ status: 0, stdout: "m1: off\n" });
    // Off when off asks nothing; a cycle when off is a power-on.
    expect(await btw(["power", "m1", "off"], config)).toMatchObject({ status: 0, stdout: "m1: off\n" });
    expect(await btw(["power", "m1", "cycle"], config)).toMatchObject({ status: 0, stdout: "m1: on\n" });
    expect(sim.actions("node1")).toEqual(["reset On", "reset PowerCycle", "reset ForceOff", "reset On"]);
    expect(sim.actions("node2")).toEqual([]);
    await btw(["power", "m1", "off"], config);
  }, 120_000);

  test("a one-time network boot in the firmware's mode, used up by the next power-on; a stale ETag is read again", async () => {
    const machine = loadConfig(labFile({ firmware: "bios" })).baremetal.machines[0];
    const bmc = bmcDriver(machine, ENV);
    const before = sim.actions("node1").length;
    sim.changeAfterNextGet("node1");
    await bmc.bootOnceFromNetwork();
    // The first PATCH carried the ETag another change had made stale (412); the second, the new one.
    expect(sim.patches("node1")).toBe(2);
    expect(sim.boot("node1")).toEqual({ BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Once", BootSourceOverrideMode: "Legacy" });
    await bmc.power("on");
    await bmc.power("off");
    await bmc.power("on");
    expect(sim.actions("node1").slice(before)).toEqual(["boot Pxe Once Legacy", "reset On", "power on from Pxe", "reset ForceOff", "reset On"]);
    expect(sim.boot("node1")).toMatchObject({ BootSourceOverrideEnabled: "Disabled" });
    await bmc.power("off");
  }, 60_000);

  test("TLS is verified: a BMC whose CA is not given is refused, naming bmc.ca_file; tls_insecure skips the check", async () => {
    const untrusted = await btw(["power", "m1", "status"], labFile({ ca_file: undefined }, "untrusted.yaml"));
    expect(untrusted.status).toBe(1);
    expect(untrusted.output).toContain(`machine m1: GET /redfish/v1/ to the BMC at https://127.0.0.1:${sim.port} failed`);
    expect(untrusted.output).toContain("give the CA that signed it as bmc.ca_file");
    expect(await btw(["power", "m1", "status"], labFile({ ca_file: undefined, tls_insecure: true }, "insecure.yaml"))).toMatchObject({ status: 0, stdout: "m1: off\n" });
  }, 60_000);

  test("a wrong password is named without the password; the machine's system is asked for when the BMC has several", async () => {
    const resets = sim.actions("node1").length;
    const wrong = await btw(["power", "m1", "on"], labFile(), { BTW_TEST_BMC_PASSWORD: `${PASSWORD}-wrong` });
    expect(wrong.status).toBe(1);
    expect(wrong.output).toContain(`machine m1: the BMC at https://127.0.0.1:${sim.port} (user admin) answered GET /redfish/v1/ with 401`);
    expect(wrong.output).not.toContain(PASSWORD);
    const several = await btw(["power", "m1", "status"], labFile({ system: undefined }, "several.yaml"));
    expect(several.output).toContain("has 2 systems (node1, node2): name the machine's with bmc.system");
    const missing = await btw(["power", "m1", "status"], labFile({ system: "node9" }, "missing.yaml"));
    expect(missing.output).toContain("has no system node9 (bmc.system); it has node1, node2");
    expect(sim.actions("node1").length).toBe(resets);
  }, 60_000);

  test("the config keeps the drivers' keys apart and will not both trust a CA and skip TLS", () => {
    const problems = (bmc: Record<string, unknown>) => configProblems(labFile(bmc, "bad.yaml"));
    expect(problems({ tls_insecure: true })).toEqual([expect.stringContaining("bmc.tls_insecure: verifies nothing: give ca_file or tls_insecure, not both")]);
    expect(problems({ cipher_suite: 3 })).toEqual([expect.stringContaining("bmc.cipher_suite: is a key of driver ipmi, not redfish")]);
    expect(problems({ tls_insecure: false, ca_file: undefined })).toEqual([expect.stringContaining("bmc.tls_insecure")]);
  });
});
