// Readiness (scripts/steps/wait-for-cloud-init.sh) while the host's libvirtd restarts: the
// daemon is stopped for a few seconds under a running domain and started again, as an
// upgrade or a crash does. The domain boots nothing (no disk, no guest agent): readiness
// must wait the restart out and then fail only for what is true, the agent never answering,
// never for a domain it believes gone. (e2e, not integration: it restarts the host's daemon,
// which the pipelines' integration jobs on a lab host must not.)
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR } from "../../lib/paths";
import { hold } from "../../testkit/held";
import { libvirtdAnswers, restartLibvirtd, virsh } from "../../testkit/libvirt";

const DOMAIN = "btw-readiness-restart";

describe("readiness across a libvirtd restart", () => {
  let release = () => {};
  let dir: string;

  beforeAll(() => {
    release = hold("readiness-restart", { libvirtPrefixes: [DOMAIN] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-readiness-"));
    // A transient domain with no disk and no network: it runs (firmware looking for a boot device) and never answers.
    const xml = path.join(dir, "domain.xml");
    fs.writeFileSync(
      xml,
      `<domain type="qemu"><name>${DOMAIN}</name><memory unit="MiB">64</memory><vcpu>1</vcpu>` +
        `<os><type arch="x86_64" machine="pc">hvm</type></os>` +
        `<devices><channel type="unix"><target type="virtio" name="org.qemu.guest_agent.0"/></channel></devices></domain>`,
    );
    virsh(["create", xml]);
  });

  afterAll(() => {
    if (!libvirtdAnswers()) restartLibvirtd(0);
    release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("waits while libvirtd does not answer, says so and when it answers again, then fails only because the agent never answered", async () => {
    const readiness = spawn("sh", [path.join(SCRIPTS_DIR, "wait-for-cloud-init.sh"), "--uri", "qemu:///system", "--domain", DOMAIN, "--hostname", "restart", "--timeout", "25"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    readiness.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    readiness.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const ended = new Promise<number | null>((resolve) => readiness.on("close", resolve));
    for (let tries = 0; !output.includes("waiting for the guest agent") && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 100));
    // Down for 10 s: readiness asks every 3 s, so it finds the daemon gone at least twice.
    restartLibvirtd(10);
    const status = await ended;
    expect({ status, output }).toEqual({ status: 1, output: expect.stringContaining("restart: libvirt (qemu:///system) does not answer: waiting for it (the VM runs on)") });
    expect(output.match(/does not answer/g)).toHaveLength(1);
    expect(output).toContain("restart: libvirt (qemu:///system) answers again");
    expect(output).toContain("not ready after 25s: the QEMU guest agent never answered");
    expect(output).not.toMatch(/is missing|not running/);
    // The domain ran on through the restart.
    expect(virsh(["domstate", DOMAIN]).trim()).toBe("running");
  }, 180_000);
});
