// scripts/steps/sign-release.sh: SHA256SUMS of a release's files and, with a
// signing key, its detached signature, checked as a downloader would (gpgv with
// only the public key). A throwaway key of the test's own, with a passphrase.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR } from "../../lib/paths";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-sign-"));
const PASSPHRASE = `pass-${process.pid}-phrase`;
let secretKey = "";
let publicKeyring = "";

const sign = (dir: string, env: Record<string, string>) => spawnSync("sh", [path.join(SCRIPTS_DIR, "sign-release.sh"), "--dir", dir], { encoding: "utf8", env: { ...process.env, ...env } });
/** gpgv as a downloader runs it: the project's public key alone. */
const verify = (dir: string) => spawnSync("gpgv", ["--keyring", publicKeyring, path.join(dir, "SHA256SUMS.asc"), path.join(dir, "SHA256SUMS")], { encoding: "utf8" });

function release(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "btw-img-minimal.qcow2"), "an image\n");
  fs.writeFileSync(path.join(dir, "btw-img-slim.qcow2"), "another image\n");
  return dir;
}

beforeAll(() => {
  const home = path.join(work, "maker");
  fs.mkdirSync(home, { mode: 0o700 });
  const gpg = (args: string[], input?: string) => execFileSync("gpg", ["--homedir", home, "--batch", "--quiet", ...args], { encoding: "utf8", input });
  gpg(["--pinentry-mode", "loopback", "--passphrase-fd", "0", "--quick-gen-key", "btw-img test release <release@example.org>", "ed25519", "sign", "1d"], `${PASSPHRASE}\n`);
  secretKey = gpg(["--pinentry-mode", "loopback", "--passphrase-fd", "0", "--armor", "--export-secret-keys"], `${PASSPHRASE}\n`);
  publicKeyring = path.join(work, "release-key.gpg");
  fs.writeFileSync(publicKeyring, execFileSync("gpg", ["--homedir", home, "--batch", "--export"]));
  spawnSync("gpgconf", ["--homedir", home, "--kill", "all"]);
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("sign-release.sh", () => {
  test("with a key: SHA256SUMS and a signature that the public key alone verifies; the files check against the list", () => {
    const dir = release("signed");
    const run = sign(dir, { BTW_SIGNING_KEY: secretKey, BTW_SIGNING_KEY_PASSPHRASE: PASSPHRASE });
    expect({ status: run.status, stderr: run.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining(`signed ${dir}/SHA256SUMS with `) });
    expect(fs.readFileSync(path.join(dir, "SHA256SUMS"), "utf8")).toMatch(/^[0-9a-f]{64} {2}btw-img-minimal\.qcow2\n[0-9a-f]{64} {2}btw-img-slim\.qcow2\n$/);
    expect(verify(dir).status).toBe(0);
    expect(spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir }).status).toBe(0);
    // Neither the key nor its passphrase in what it said; no keyring of its own left.
    expect(`${run.stdout}${run.stderr}`).not.toContain(PASSPHRASE);
    expect(`${run.stdout}${run.stderr}`).not.toContain("PRIVATE KEY");
    // A changed list fails the signature; a changed file fails the list.
    fs.appendFileSync(path.join(dir, "SHA256SUMS"), "0".repeat(64) + "  extra\n");
    expect(verify(dir).status).not.toBe(0);
    const other = release("tampered");
    expect(sign(other, { BTW_SIGNING_KEY: secretKey, BTW_SIGNING_KEY_PASSPHRASE: PASSPHRASE }).status).toBe(0);
    fs.appendFileSync(path.join(other, "btw-img-slim.qcow2"), "changed\n");
    expect(verify(other).status).toBe(0);
    expect(spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: other }).status).not.toBe(0);
  }, 120_000);

  test("without a key: the list only, said so; a wrong passphrase or a bad key fails, naming the variable", () => {
    const dir = release("unsigned");
    const run = sign(dir, { BTW_SIGNING_KEY: "" });
    expect({ status: run.status, stderr: run.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining("not signed: no BTW_SIGNING_KEY") });
    expect(fs.readdirSync(dir).sort()).toEqual(["SHA256SUMS", "btw-img-minimal.qcow2", "btw-img-slim.qcow2"]);
    const wrong = sign(release("wrong"), { BTW_SIGNING_KEY: secretKey, BTW_SIGNING_KEY_PASSPHRASE: "not it" });
    expect({ status: wrong.status, stderr: wrong.stderr }).toMatchObject({
      status: 1,
      stderr: expect.stringContaining("gpg could not sign with BTW_SIGNING_KEY (a wrong BTW_SIGNING_KEY_PASSPHRASE?)"),
    });
    expect(fs.existsSync(path.join(work, "wrong", "SHA256SUMS.asc"))).toBe(false);
    const bad = sign(release("bad"), { BTW_SIGNING_KEY: "not a key" });
    expect({ status: bad.status, stderr: bad.stderr }).toMatchObject({ status: 1, stderr: expect.stringContaining("BTW_SIGNING_KEY is not a secret key gpg can import") });
  }, 120_000);
});
