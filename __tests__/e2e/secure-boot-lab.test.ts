// Secure Boot in the lab: `libvirt.firmware: uefi-secure` boots OVMF with Secure
// Boot enforced and Microsoft's keys enrolled (q35 with SMM), as PCs ship. The
// profiles with each of Debian's kernels are built from Debian's real trixie
// image, hold every package of their chain, and boot to cloud-init done with
// Secure Boot on inside: shim, GRUB, the kernel and every module the boot loads
// passed its checks.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { LabWorkspace } from "../../testkit/cdktf-cli";
import { fixtureImage } from "../../testkit/fixture-image";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { testLab } from "../../testkit/lab-yaml";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";

const LAB = "btwsb";
const PREFIX = `btw-${LAB}`;
// The cloud kernel (minimal) and the generic one (metal). The desktops carry the same kernel and
// modules; profiles-real-image.test.ts builds them with the Secure Boot check (nothing unsigned).
// Booting all four at once under emulation took about 30 minutes, too much for CI's 90.
const PROFILES = ["minimal", "metal"];

describe("a uefi-secure lab boots a profile with each of Debian's kernels (minimal: cloud, metal: generic) with Secure Boot enforced", () => {
  let server: FileServer;
  const workspace = new LabWorkspace();
  let release = () => {};

  beforeAll(async () => {
    release = hold("secure-boot-lab", { libvirtPrefixes: [PREFIX, `${LAB}-net`] });
    server = await serveDirectory(fixtureImage("trixie").dir);
    const lab = testLab({
      name: LAB,
      imageBaseUrl: server.baseUrl,
      vms: PROFILES.map((profile) => ({ name: profile, profile, memory: 1024 })),
      extra: {
        libvirt: { accel: "tcg", firmware: "uefi-secure" },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.23.0/24" },
        readiness: { timeout: 1800 },
      },
    });
    fs.writeFileSync(workspace.configFile, stringify(lab));
  }, 600_000);

  afterAll(async () => {
    await workspace.destroy();
    release();
    workspace.remove();
    await server?.close();
  }, 900_000);

  test("deploy builds each profile, boots its VM with Secure Boot on, and waits for cloud-init done", async () => {
    const run = await workspace.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    for (const profile of PROFILES) {
      const domain = `${PREFIX}-${profile}`;
      const xml = virsh(["dumpxml", domain]);
      expect(xml).toMatch(/<loader[^>]*secure='yes'[^>]*>\/usr\/share\/OVMF\/OVMF_CODE_4M\.ms\.fd<\/loader>/);
      expect(xml).toMatch(/<smm state='on'\/>/);
      expect({ profile, status: guestExec(domain, "/usr/bin/cloud-init", ["status"]).stdout.trim() }).toEqual({ profile, status: "status: done" });
      expect({ profile, sb: guestExec(domain, "/usr/bin/mokutil", ["--sb-state"]).stdout.trim() }).toEqual({ profile, sb: "SecureBoot enabled" });
      // The kernel knows it too: lockdown follows Secure Boot in Debian's kernel.
      expect(guestExec(domain, "/bin/cat", ["/sys/kernel/security/lockdown"]).stdout).toMatch(/\[integrity\]/);
      // Every package of the profile's chain is installed.
      const wanted = readProfile(path.join(PROJECT_DIR, "profiles"), profile, "trixie").packages.map((p) => p.split(/[=/]/)[0]);
      const installed = new Set(guestExec(domain, "/usr/bin/dpkg-query", ["-W", "-f", "${Package}\\n"]).stdout.split("\n"));
      expect({ profile, missing: wanted.filter((name) => !installed.has(name)) }).toEqual({ profile, missing: [] });
    }
  }, 5_400_000);

  test("destroy removes every domain, NVRAM file, volume, network and pool of the lab", async () => {
    const run = await workspace.destroy();
    expect(run.status).toBe(0);
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(fs.readdirSync("/var/lib/libvirt/qemu/nvram").filter((f) => f.startsWith(PREFIX))).toEqual([]);
    expect(hostLeftovers(workspace.dir)).toEqual([]);
  }, 900_000);
});
