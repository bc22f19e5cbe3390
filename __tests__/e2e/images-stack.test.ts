// CI's image job, as it runs it: `cdktf deploy images` builds the lab's images
// through the same pipeline as the lab (ImagePipeline), touches no libvirt, and
// names each customized qcow2 in its outputs, which the job then publishes.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { fixtureImage } from "../../testkit/fixture-image";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { testLab } from "../../testkit/lab-yaml";
import { virshNames } from "../../testkit/libvirt";

const LAB = "btwimages";

describe("`cdktf deploy images`, as CI's image job runs it", () => {
  let server: FileServer;
  const workspace = new LabWorkspace();
  const outputsFile = path.join(workspace.dir, "images-outputs.json");

  beforeAll(async () => {
    server = await serveDirectory(fixtureImage("trixie").dir);
    fs.writeFileSync(workspace.configFile, stringify(testLab({ name: LAB, imageBaseUrl: server.baseUrl, vms: [{ name: "a" }, { name: "b", profile: "metal" }] })));
  }, 1_500_000);

  afterAll(async () => {
    await workspace.destroyStack("images");
    workspace.remove();
    await server?.close();
  }, 600_000);

  test("builds each profile the lab boots and outputs its qcow2; no libvirt object is made", async () => {
    const run = await workspace.deployStack("images", 2_400_000, {}, ["--outputs-file", outputsFile]);
    expect({ status: run.status, output: run.output }).toEqual({ status: 0, output: expect.not.stringMatching(/Error:/) });
    const images: Record<string, string> = JSON.parse(fs.readFileSync(outputsFile, "utf8")).images.images;
    expect(Object.keys(images).sort()).toEqual(["metal", "minimal"]);
    for (const image of Object.values(images)) {
      const info = JSON.parse(execFileSync("qemu-img", ["info", "--output", "json", image], { encoding: "utf8" }));
      expect(info.format).toBe("qcow2");
    }
    for (const list of ["list", "net-list", "pool-list"] as const) expect(virshNames(list).filter((name) => name.includes(LAB))).toEqual([]);
    // A second deploy with nothing changed runs nothing.
    const again = await workspace.deployStack("images", 600_000);
    expect(again.status).toBe(0);
    expect(again.output).toMatch(/No changes|0 added, 0 changed, 0 destroyed/);
  }, 2_700_000);
});
