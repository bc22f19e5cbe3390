// Debian 12 (bookworm) as well as 13: a BIOS lab on Debian's real bookworm
// image is acquired, customized, booted to cloud-init done, its partitions
// captured for bare metal, and destroyed without leftovers.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { LabWorkspace } from "../helpers/cdktf-cli";
import { fixtureImage } from "../helpers/fixture-image";
import { FileServer, serveDirectory } from "../helpers/http-server";
import { testLab } from "../helpers/lab-yaml";
import { forceCleanup, guestExec, hostLeftovers, leftovers } from "../helpers/libvirt";

const LAB = "btwdeb12";
const PREFIX = `btw-${LAB}`;

describe("Debian 12: a BIOS lab on the real bookworm image", () => {
  let server: FileServer;
  const workspace = new LabWorkspace();
  const artifacts = path.join(workspace.dir, "artifacts");

  beforeAll(async () => {
    forceCleanup(PREFIX);
    forceCleanup(`${LAB}-net`);
    const fixture = fixtureImage("bookworm");
    expect(fixture.archiveName).toBe("debian-12-generic-amd64.tar.xz");
    server = await serveDirectory(fixture.dir);
    const lab = testLab({
      name: LAB,
      release: "bookworm",
      imageBaseUrl: server.baseUrl,
      vms: [{ name: "bookworm1" }],
      extra: {
        libvirt: { accel: "tcg", firmware: "bios" },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.31.0/24" },
        readiness: { timeout: 900 },
        baremetal: { output_dir: artifacts },
      },
    });
    fs.writeFileSync(workspace.configFile, stringify(lab));
  }, 1_800_000);

  afterAll(async () => {
    workspace.destroy();
    forceCleanup(PREFIX);
    forceCleanup(`${LAB}-net`);
    workspace.remove();
    await server?.close();
  }, 900_000);

  test("deploy boots the VM to cloud-init done; inside, it is bookworm with bookworm's apt sources", () => {
    const run = workspace.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    const vm = workspace.outputs()["vm-bookworm1"].vm;
    expect(vm).toMatchObject({ name: "bookworm1", ready: true });
    const domain = `${PREFIX}-bookworm1`;
    expect(guestExec(domain, "/usr/bin/cloud-init", ["status"]).stdout).toContain("status: done");
    expect(guestExec(domain, "/bin/cat", ["/etc/os-release"]).stdout).toMatch(/^VERSION_CODENAME=bookworm$/m);
    expect(guestExec(domain, "/bin/sh", ["-c", "test -d /sys/firmware/efi && echo uefi || echo bios"]).stdout.trim()).toBe("bios");
    const sources = guestExec(domain, "/bin/sh", ["-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null"]).stdout;
    expect(sources).toContain("bookworm");
    expect(sources).not.toContain("trixie");
  }, 2_400_000);

  test("the tested partitions are captured for bare metal with a manifest", () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(artifacts, "minimal", "manifest.json"), "utf8"));
    expect(manifest.profile).toBe("minimal");
    expect(manifest.partitions.length).toBeGreaterThanOrEqual(2);
  });

  test("destroy leaves nothing of the lab", () => {
    expect(workspace.destroy().status).toBe(0);
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(hostLeftovers(workspace.dir, path.join(process.env.BTW_CACHE_DIR as string, "labs", LAB))).toEqual([]);
  }, 900_000);
});
