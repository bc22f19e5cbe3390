// Bad lab input fails deploy with a message that names the input at fault,
// before anything of the lab is created (or, for a VM whose cloud-init fails,
// naming the VM and cloud-init's error).
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { CliRun, LabWorkspace } from "../../testkit/cdktf-cli";
import { fixtureImage } from "../../testkit/fixture-image";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { testLab } from "../../testkit/lab-yaml";
import { hold } from "../../testkit/held";
import { leftovers } from "../../testkit/libvirt";

// Each test has a lab of its own (btwbad1, btwbad2, ...), destroyed after it.
const LAB = "btwbad";
const PREFIX = `btw-${LAB}`;

describe("bad lab input", () => {
  let server: FileServer;
  const workspaces: LabWorkspace[] = [];

  function deploy(lab: Record<string, unknown>): Promise<CliRun> {
    const workspace = new LabWorkspace();
    workspaces.push(workspace);
    fs.writeFileSync(workspace.configFile, stringify(lab));
    return workspace.deploy();
  }

  afterEach(async () => {
    for (const workspace of workspaces.splice(0)) {
      await workspace.destroy();
      workspace.remove();
    }
  }, 900_000);

  let release = () => {};

  beforeAll(async () => {
    // btw-btwbadN-* objects, and the networks btwbadN-net.
    release = hold("bad-lab", { libvirtPrefixes: [PREFIX, LAB] });
    server = await serveDirectory(fixtureImage("trixie").dir);
  }, 1_500_000);

  afterAll(async () => {
    release();
    await server?.close();
  }, 900_000);

  test("an existing network that does not exist is named, and nothing is created", async () => {
    const run = await deploy(testLab({ name: `${LAB}1`, imageBaseUrl: server.baseUrl, extra: { network: { name: "btw-no-such-net", create: false } } }));
    expect(run.status).not.toBe(0);
    expect(run.output).toMatch(/libvirt network 'btw-no-such-net' \(network\.name\) does not exist on qemu:\/\/\/system/);
    expect(leftovers(`${PREFIX}1`)).toEqual([]);
    expect(run.output).not.toMatch(/prepare-cloud-img/);
  }, 600_000);

  test("an NVRAM template path that does not exist is named, and nothing is created", async () => {
    const run = await deploy(testLab({ name: `${LAB}2`, imageBaseUrl: server.baseUrl, extra: { libvirt: { accel: "tcg", firmware: "uefi", ovmf_vars: "/nonexistent/OVMF_VARS.fd" } } }));
    expect(run.status).not.toBe(0);
    expect(run.output).toMatch(/file '\/nonexistent\/OVMF_VARS\.fd' \(libvirt\.ovmf_vars\) does not exist/);
    expect(leftovers(`${PREFIX}2`)).toEqual([]);
    expect(leftovers(`${LAB}2-net`)).toEqual([]);
  }, 600_000);

  test("user-data that fails the cloud-init schema is refused with cloud-init's message before the VM is created", async () => {
    const run = await deploy(testLab({ name: `${LAB}3`, imageBaseUrl: server.baseUrl, vms: [{ name: "schema", user_data: { runcmd: "echo not a list" } }] }));
    expect(run.status).not.toBe(0);
    expect(run.output).toMatch(/make-seed-iso: schema: user-data fails the cloud-init schema/);
    expect(run.output).toMatch(/make-seed-iso: schema: user-data fails the cloud-init schema:\n.*runcmd: <hidden> is not of type 'array'/);
    expect(leftovers(`${PREFIX}3-schema`)).toEqual([]);
    // The failed seed is tainted and gets no destroy step: the seed step itself left no folder.
    expect(fs.existsSync(path.join(process.env.BTW_CACHE_DIR as string, "labs", `${LAB}3`))).toBe(false);
  }, 1_200_000);

  test("a VM whose cloud-init fails makes deploy fail naming the VM and cloud-init's error", async () => {
    const run = await deploy(
      testLab({
        name: `${LAB}4`,
        imageBaseUrl: server.baseUrl,
        vms: [{ name: "failing", user_data: { runcmd: ["echo btw-about-to-fail", "exit 1"] } }],
        // It boots alone: emulated, two CPUs boot it in about 0.7 of the time.
        extra: { network: { name: `${LAB}4-net`, mode: "isolated", cidr: "10.213.33.0/24" }, readiness: { timeout: 900 }, defaults: { memory: 1024, vcpus: 2, disk: 4 } },
      }),
    );
    expect(run.status).not.toBe(0);
    expect(run.output).toMatch(/wait-for-cloud-init: failing: cloud-init reported error/);
    expect(run.output).toMatch(/runcmd|scripts[-_]user/);
  }, 1_800_000);
});
