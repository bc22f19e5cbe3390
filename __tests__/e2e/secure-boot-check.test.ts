// A profile that would break Secure Boot is reported when the image is built:
// customizing Debian's real image with a module whose signature was cut off
// (__tests__/fixtures/profiles/unsigned-module) fails with --secure-boot (a lab
// with firmware uefi-secure) and only warns without it.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { runScript, withImageRoot } from "../../testkit/image";
import { hostLeftovers } from "../../testkit/libvirt";

const PROFILES = path.join(PROJECT_DIR, "__tests__", "fixtures", "profiles");
const UNSIGNED = /\/usr\/lib\/modules\/[^/ ]+\/updates\/dkms\/dummy\.ko/;

describe("customize-image.sh reports what Secure Boot would refuse", () => {
  let work: string;
  let base: string;
  let baseSha256: string;
  const sha256 = (file: string) => execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
  const customize = (output: string, secureBoot: boolean) => runScript("customize-image.sh", customizeArgs(readProfile(PROFILES, "unsigned-module", "trixie"), "trixie", base, output, { secureBoot }));

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-secure-boot-"));
    base = acquireFixtureBase("trixie", work);
    baseSha256 = sha256(base);
  }, 1_800_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work)).toEqual([]);
    expect(sha256(base)).toBe(baseSha256);
  });

  test("with --secure-boot, an unsigned module fails the build naming it and what to do, and leaves no image", () => {
    const output = path.join(work, "secure.qcow2");
    const run = customize(output, true);
    expect({ status: run.status, tail: run.stderr.slice(-2000) }).toMatchObject({ status: 1 });
    expect(run.stderr).toMatch(new RegExp(`customize-image: error: Secure Boot would refuse ${UNSIGNED.source}: it is not signed`));
    expect(run.stderr).toMatch(/customize-image: error: --secure-boot \(firmware uefi-secure\): sign .* \(a MOK enrolled with mokutil, say\) or use firmware uefi/);
    // Debian's signed kernel is not named.
    expect(run.stderr).not.toMatch(/refuse \/boot\//);
    expect(run.stderr).not.toMatch(/warning: Secure Boot/);
    expect(fs.readdirSync(work).filter((file) => file.startsWith("secure.qcow2"))).toEqual([]);
  }, 1_200_000);

  test("without it, the build succeeds and warns, naming the module, which is in the image unsigned", () => {
    const output = path.join(work, "warned.qcow2");
    const run = customize(output, false);
    expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(run.stderr).toMatch(new RegExp(`customize-image: warning: Secure Boot would refuse ${UNSIGNED.source}: it is not signed`));
    expect(run.stderr.match(/Secure Boot would refuse/g)).toHaveLength(1);
    expect(fs.readdirSync(work).filter((file) => file.startsWith("warned.qcow2"))).toEqual(["warned.qcow2"]);
    withImageRoot(output, (root) => {
      const lib = path.join(SCRIPTS_DIR, "lib", "secure-boot.sh");
      const check = spawnSync("sh", ["-c", '. "$1"; unsigned_boot_files "$2"', "sh", lib, root], { encoding: "utf8" });
      expect(check.stdout).toMatch(new RegExp(`^${UNSIGNED.source}\n$`));
      // The module the profile left is a whole ELF object, only without its signature.
      const module = fs.readFileSync(path.join(root, check.stdout.trim()));
      expect(module.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(module.length).toBe(Number(module.readBigUInt64LE(0x28)) + module.readUInt16LE(0x3a) * module.readUInt16LE(0x3c));
    });
  }, 1_200_000);
});
