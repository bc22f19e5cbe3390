// Debian 12 (bookworm) as well as 13: the stand-in bookworm image is acquired
// and customized like trixie's, stays bookworm, and comes out clean.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config";
import { fixtureImage } from "../helpers/fixture-image";
import { FileServer, serveDirectory } from "../helpers/http-server";
import { installedPackages, runScript, withImageRoot } from "../helpers/image";
import { hostLeftovers } from "../helpers/libvirt";

describe("Debian 12: acquire and customize the bookworm image", () => {
  let server: FileServer;
  let work: string;

  beforeAll(async () => {
    const fixture = fixtureImage("bookworm");
    expect(fixture.archiveName).toBe("debian-12-generic-amd64.tar.xz");
    server = await serveDirectory(fixture.dir);
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-debian12-"));
  }, 1_800_000);

  afterAll(async () => {
    await server?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test("minimal on bookworm installs its packages, keeps bookworm's apt sources and leaves the image clean", () => {
    const base = path.join(work, "base.qcow2");
    const acquire = runScript("prepare-cloud-img.sh", [
      "--url", `${server.baseUrl}/debian-12-generic-amd64.tar.xz`,
      "--checksums", `${server.baseUrl}/SHA512SUMS`,
      "--cache-dir", path.join(work, "cache"),
      "--link", base,
    ]);
    expect(acquire.status).toBe(0);
    const output = path.join(work, "minimal.qcow2");
    const customize = runScript("customize-image.sh", ["--base", base, "--profiles-dir", path.join(PROJECT_DIR, "profiles"), "--profile", "minimal", "--output", output]);
    expect({ status: customize.status, stderr: customize.status === 0 ? "" : customize.stderr.slice(-2000) }).toEqual({ status: 0, stderr: "" });
    withImageRoot(output, (root) => {
      expect(fs.readFileSync(path.join(root, "etc/os-release"), "utf8")).toMatch(/^VERSION_CODENAME=bookworm$/m);
      const packages = installedPackages(root);
      for (const name of ["qemu-guest-agent", "curl", "cloud-init"]) expect(packages.has(name)).toBe(true);
      const sources = fs.readFileSync(path.join(root, "etc/apt/sources.list.d/debian.sources"), "utf8");
      expect(sources).toContain("bookworm");
      expect(sources).not.toContain("trixie");
      expect(fs.readFileSync(path.join(root, "etc/machine-id"), "utf8")).toBe("");
      expect(fs.readdirSync(path.join(root, "etc/ssh")).filter((f) => f.startsWith("ssh_host_"))).toEqual([]);
    });
    expect(hostLeftovers(work)).toEqual([]);
  }, 1_200_000);
});
