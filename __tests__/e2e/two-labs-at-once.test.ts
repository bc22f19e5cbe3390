// Two labs from one checkout at the same time, as two people (or two CI jobs)
// would run `BTW_CONFIG=... btw up`: a BIOS lab on Debian's real bookworm
// image and a Secure Boot lab on the real trixie image. Each synthesizes into its own
// folder, both boot to cloud-init done, each captures its partitions, and
// `btw down` removes each without touching the other.
// The trixie lab is Secure Boot in the lab: `libvirt.firmware: uefi-secure` boots OVMF
// with Secure Boot enforced and Microsoft's keys enrolled (q35 with SMM), as PCs ship,
// a VM of the profile with each of Debian's kernels (minimal: cloud, metal: generic);
// each holds every package of its chain and reaches cloud-init done with Secure Boot
// on inside: shim, GRUB, the kernel and every module the boot loads passed its checks.
// (The desktops carry the same kernel and modules; profiles-real-image.test.ts builds
// them with the Secure Boot check. Booting all four at once under emulation took about
// 30 minutes, too much for CI.)
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { fixtureImage } from "../../testkit/fixture-image";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { testLab } from "../../testkit/lab-yaml";
import { hold } from "../../testkit/held";
import { guestExec, hostLeftovers, leftovers, virsh } from "../../testkit/libvirt";

interface TestLab {
  name: string;
  release: "trixie" | "bookworm";
  codename: RegExp;
  subnet: string;
  firmware: "bios" | "uefi-secure";
  /** Its VMs' profiles, a VM each, named as its profile. */
  profiles: string[];
  dir: string;
}

const LABS: TestLab[] = [
  { name: "btwdeb12", release: "bookworm", codename: /^VERSION_CODENAME=bookworm$/m, subnet: "10.213.31", firmware: "bios", profiles: ["minimal"], dir: "" },
  { name: "btwdeb13", release: "trixie", codename: /^VERSION_CODENAME=trixie$/m, subnet: "10.213.32", firmware: "uefi-secure", profiles: ["minimal", "metal"], dir: "" },
];
const domainsOf = (lab: TestLab) => lab.profiles.map((profile) => `btw-${lab.name}-${profile}`);
// `btw up` synthesizes into the checkout's cdktf.out/labs/<name>; each run of this test has a new state
// folder, so a folder left by an earlier run would hold another backend path.
const synthDirOf = (lab: TestLab) => path.join(PROJECT_DIR, "cdktf.out", "labs", lab.name);
const artifactsOf = (lab: TestLab) => path.join(lab.dir, "artifacts");

/** `bin/btw COMMAND` for a lab, without blocking the test (both labs run at once). */
function btw(lab: TestLab, command: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(path.join(PROJECT_DIR, "bin", "btw"), [command], {
      cwd: lab.dir,
      env: { ...process.env, BTW_CONFIG: path.join(lab.dir, "lab.yaml"), BTW_STATE_DIR: path.join(lab.dir, "state"), CI: "1", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("close", (status) => {
      fs.appendFileSync(path.join(lab.dir, "btw.log"), `\n$ btw ${command}\n${output}`);
      resolve({ status, output });
    });
  });
}

describe("two labs, Debian 12 and Debian 13, deployed at once from one checkout", () => {
  const servers: FileServer[] = [];
  let release = () => {};

  beforeAll(async () => {
    release = hold("two-labs-at-once", { libvirtPrefixes: LABS.flatMap((lab) => [`btw-${lab.name}`, `${lab.name}-net`]) });
    for (const lab of LABS) {
      fs.rmSync(synthDirOf(lab), { recursive: true, force: true });
      lab.dir = fs.mkdtempSync(path.join(os.tmpdir(), `btw-${lab.name}-`));
      const server = await serveDirectory(fixtureImage(lab.release).dir);
      servers.push(server);
      const config = testLab({
        name: lab.name,
        release: lab.release,
        imageBaseUrl: server.baseUrl,
        vms: lab.profiles.map((profile) => ({ name: profile, profile })),
        extra: {
          libvirt: { accel: "tcg", firmware: lab.firmware },
          network: { name: `${lab.name}-net`, mode: "isolated", cidr: `${lab.subnet}.0/24` },
          readiness: { timeout: 900 },
          baremetal: { output_dir: artifactsOf(lab) },
        },
      });
      fs.writeFileSync(path.join(lab.dir, "lab.yaml"), stringify(config));
    }
  }, 1_800_000);

  afterAll(async () => {
    await Promise.all(LABS.map((lab) => (lab.dir ? btw(lab, "down") : undefined)));
    release();
    for (const lab of LABS) {
      if (lab.dir) fs.rmSync(lab.dir, { recursive: true, force: true });
      fs.rmSync(synthDirOf(lab), { recursive: true, force: true });
    }
    await Promise.all(servers.map((server) => server.close()));
  }, 900_000);

  test("`btw up` of both at once: each lab synthesizes into its own folder and boots to cloud-init done", async () => {
    const runs = await Promise.all(LABS.map((lab) => btw(lab, "up")));
    LABS.forEach((lab, i) => {
      expect({ lab: lab.name, status: runs[i].status, tail: runs[i].status === 0 ? "" : runs[i].output.slice(-3000) }).toEqual({ lab: lab.name, status: 0, tail: "" });
      const outputs = JSON.parse(fs.readFileSync(path.join(synthDirOf(lab), "lab-outputs.json"), "utf8")).lab;
      for (const profile of lab.profiles) expect(outputs[`vm-${profile}`].vm).toMatchObject({ domain: `btw-${lab.name}-${profile}` });
      // Each deploy ran the engine in its lab's own stack folder.
      expect(fs.existsSync(path.join(synthDirOf(lab), "stacks", "lab", ".terraform"))).toBe(true);
    });
  }, 5_400_000);

  test("inside each VM: its own release, its firmware, cloud-init done", () => {
    for (const lab of LABS) {
      for (const domain of domainsOf(lab)) {
        expect({ domain, status: guestExec(domain, "/usr/bin/cloud-init", ["status"]).stdout.trim() }).toEqual({ domain, status: "status: done" });
        expect(guestExec(domain, "/bin/cat", ["/etc/os-release"]).stdout).toMatch(lab.codename);
        expect({ domain, firmware: guestExec(domain, "/bin/sh", ["-c", "test -d /sys/firmware/efi && echo uefi || echo bios"]).stdout.trim() }).toEqual({
          domain,
          firmware: lab.firmware === "bios" ? "bios" : "uefi",
        });
      }
    }
  }, 300_000);

  test("the uefi-secure lab: each VM booted with Secure Boot enforced (the kernel in lockdown) and holds every package of its profile's chain", () => {
    const lab = LABS.find((l) => l.firmware === "uefi-secure")!;
    lab.profiles.forEach((profile, i) => {
      const domain = domainsOf(lab)[i];
      const xml = virsh(["dumpxml", domain]);
      expect(xml).toMatch(/<loader[^>]*secure='yes'[^>]*>\/usr\/share\/OVMF\/OVMF_CODE_4M\.ms\.fd<\/loader>/);
      expect(xml).toMatch(/<smm state='on'\/>/);
      expect({ profile, sb: guestExec(domain, "/usr/bin/mokutil", ["--sb-state"]).stdout.trim() }).toEqual({ profile, sb: "SecureBoot enabled" });
      // Lockdown follows Secure Boot in Debian's kernel.
      expect(guestExec(domain, "/bin/cat", ["/sys/kernel/security/lockdown"]).stdout).toMatch(/\[integrity\]/);
      const wanted = readProfile(path.join(PROJECT_DIR, "profiles"), profile, lab.release).packages.map((p) => p.split(/[=/]/)[0]);
      const installed = new Set(guestExec(domain, "/usr/bin/dpkg-query", ["-W", "-f", "${Package}\\n"]).stdout.split("\n"));
      expect({ profile, missing: wanted.filter((name) => !installed.has(name)) }).toEqual({ profile, missing: [] });
    });
  }, 300_000);

  test("each lab captured the partitions it tested, with a manifest", () => {
    for (const lab of LABS) {
      const manifest = JSON.parse(fs.readFileSync(path.join(artifactsOf(lab), "minimal", "manifest.json"), "utf8"));
      expect(manifest.profile).toBe("minimal");
      expect(manifest.partitions.length).toBeGreaterThanOrEqual(2);
    }
  });

  test("`btw down` of one lab leaves the other running; then the other goes too, leaving nothing", async () => {
    const [first, second] = LABS;
    expect((await btw(first, "down")).status).toBe(0);
    expect(leftovers(`btw-${first.name}`)).toEqual([]);
    expect(leftovers(`${first.name}-net`)).toEqual([]);
    for (const domain of domainsOf(second)) expect(guestExec(domain, "/bin/true", []).exitcode).toBe(0);
    expect((await btw(second, "down")).status).toBe(0);
    for (const lab of LABS) {
      expect(leftovers(`btw-${lab.name}`)).toEqual([]);
      expect(leftovers(`${lab.name}-net`)).toEqual([]);
      expect(hostLeftovers(lab.dir, path.join(process.env.BTW_CACHE_DIR as string, "labs", lab.name))).toEqual([]);
    }
    expect(fs.readdirSync("/var/lib/libvirt/qemu/nvram").filter((f) => LABS.some((lab) => f.startsWith(`btw-${lab.name}`)))).toEqual([]);
  }, 1_800_000);
});
