// Acquire: download, verify against the sha512 it is handed (read from
// SHA512SUMS at synth, lib/config/image-release.ts), extract and convert a cloud
// image, cached by checksum. Small archives made here stand in for Debian's,
// served on loopback.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checksumFor } from "../../lib/config/image-release";
import { SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { runScript } from "../../testkit/image";

const ARCHIVE = "debian-13-generic-amd64.tar.xz";

function sha512(file: string): string {
  return execFileSync("sha512sum", [file], { encoding: "utf8" }).split(" ")[0];
}

/** A Debian-like release folder: ARCHIVE holding `member` (random bytes, so xz cannot shrink it much), and SHA512SUMS. */
function makeRelease(dir: string, options: { member?: string; sizeMiB?: number; sums?: (sha: string) => string } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), "btw-archive-"));
  execFileSync("dd", ["if=/dev/urandom", `of=${path.join(staging, options.member ?? "disk.raw")}`, "bs=1M", `count=${options.sizeMiB ?? 4}`], { stdio: "ignore" });
  execFileSync("tar", ["-C", staging, "-cJf", path.join(dir, ARCHIVE), options.member ?? "disk.raw"]);
  fs.rmSync(staging, { recursive: true, force: true });
  const sha = sha512(path.join(dir, ARCHIVE));
  const sums = options.sums ? options.sums(sha) : `${"0".repeat(128)}  debian-13-generic-amd64.json\n${sha}  ${ARCHIVE}\n`;
  fs.writeFileSync(path.join(dir, "SHA512SUMS"), sums);
}

describe("acquire the cloud image", () => {
  let root: string;
  let server: FileServer;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "btw-acquire-"));
    makeRelease(path.join(root, "good"), { sizeMiB: 8 });
    makeRelease(path.join(root, "mismatch"), { sums: () => `${"ab".repeat(64)}  ${ARCHIVE}\n` });
    makeRelease(path.join(root, "nodisk"), { member: "root.img" });
    makeRelease(path.join(root, "truncated"));
    const truncated = path.join(root, "truncated", ARCHIVE);
    fs.truncateSync(truncated, Math.floor(fs.statSync(truncated).size / 2));
    fs.writeFileSync(path.join(root, "truncated", "SHA512SUMS"), `${sha512(truncated)}  ${ARCHIVE}\n`);
    server = await serveDirectory(root);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** The sha512 the release's SHA512SUMS gives, as synth reads it. */
  const published = (release: string) => checksumFor(fs.readFileSync(path.join(root, release, "SHA512SUMS"), "utf8"), ARCHIVE) as string;
  const acquire = (release: string, cache: string, sha512 = published(release)) =>
    runScript("prepare-cloud-img.sh", [
      "--url", `${server.baseUrl}/${release}/${ARCHIVE}`,
      "--sha512", sha512,
      "--checksums", `${server.baseUrl}/${release}/SHA512SUMS`,
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
  const files = (dir: string) => (fs.existsSync(dir) ? execFileSync("find", [dir, "-type", "f"], { encoding: "utf8" }).trim().split("\n").filter(Boolean) : []);

  test("a verified archive becomes a cached qcow2, and a second run downloads nothing", () => {
    const cache = path.join(root, "cache-good");
    const first = acquire("good", cache);
    expect(first.status).toBe(0);
    const image = fs.realpathSync(path.join(cache, "current.qcow2"));
    expect(image).toContain(sha512(path.join(root, "good", ARCHIVE)));
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", image], { encoding: "utf8" }));
    expect(info.format).toBe("qcow2");
    expect(info["virtual-size"]).toBe(8 * 1024 * 1024);
    const archiveRequests = () => server.requests().filter((r) => r.path === `/good/${ARCHIVE}`).length;
    expect(archiveRequests()).toBe(1);

    const second = acquire("good", cache);
    expect(second.status).toBe(0);
    expect(second.stderr).toMatch(/cached/);
    expect(archiveRequests()).toBe(1);
    expect(server.requests().filter((r) => r.path === "/good/SHA512SUMS")).toEqual([]);
    expect(files(cache).filter((f) => /\.part$|\.tmp|\.partial/.test(f))).toEqual([]);
    // What synth asks when SHA512SUMS cannot be read: the image a link points at.
    const printAcquired = (link: string) =>
      execFileSync("sh", [path.join(SCRIPTS_DIR, "prepare-cloud-img.sh"), "--print-acquired", "--link", link], { encoding: "utf8" });
    expect(printAcquired(path.join(cache, "current.qcow2")).trim()).toBe(sha512(path.join(root, "good", ARCHIVE)));
    expect(printAcquired(path.join(cache, "none.qcow2"))).toBe("");
  });

  test("an interrupted download resumes where it stopped", async () => {
    const cache = path.join(root, "cache-resume");
    await server.cutNext(`/good/${ARCHIVE}`, 3 * 1024 * 1024);
    const interrupted = acquire("good", cache);
    expect(interrupted.status).not.toBe(0);
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(false);
    const resumed = acquire("good", cache);
    expect(resumed.status).toBe(0);
    const ranged = server.requests().filter((r) => r.path === `/good/${ARCHIVE}` && r.range);
    expect(ranged.length).toBeGreaterThanOrEqual(1);
    expect(ranged[ranged.length - 1]).toMatchObject({ status: 206 });
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(true);
  });

  test.each([
    ["mismatch", /checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/mismatch\/debian-13-generic-amd64\.tar\.xz: expected abab/],
    ["truncated", /archive at http:\/\/127\.0\.0\.1:\d+\/truncated\/debian-13-generic-amd64\.tar\.xz is corrupt or truncated/],
    ["nodisk", /archive at http:\/\/127\.0\.0\.1:\d+\/nodisk\/debian-13-generic-amd64\.tar\.xz has no disk\.raw/],
  ])("bad input '%s' fails with a clear message and caches nothing", (release, message) => {
    const cache = path.join(root, `cache-${release}`);
    const run = acquire(release, cache);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(message);
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
  });

  test("an image that changed since the plan (--sha512) is refused, naming SHA512SUMS, and nothing is cached", () => {
    const cache = path.join(root, "cache-planned");
    const run = acquire("good", cache, "cd".repeat(64));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/good\/debian-13-generic-amd64\.tar\.xz: expected cdcd.*; if a new image was published behind this URL since http:\/\/127\.0\.0\.1:\d+\/good\/SHA512SUMS was read, run the deploy again/);
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
    expect(acquire("good", cache).status).toBe(0);
  });

  test("without --sha512 nothing is downloaded: the error names the SHA512SUMS that lists it", () => {
    const cache = path.join(root, "cache-no-sha512");
    const requestsBefore = server.requests().length;
    const run = runScript("prepare-cloud-img.sh", [
      "--url", `${server.baseUrl}/good/${ARCHIVE}`,
      "--checksums", `${server.baseUrl}/good/SHA512SUMS`,
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/missing --sha512: the sha512 of debian-13-generic-amd64\.tar\.xz is unknown \(http:\/\/127\.0\.0\.1:\d+\/good\/SHA512SUMS lists it\)/);
    expect(server.requests().length).toBe(requestsBefore);
    expect(fs.existsSync(cache)).toBe(false);
  });

  test("an unreachable URL is named in the error", () => {
    const cache = path.join(root, "cache-unreachable");
    const run = runScript("prepare-cloud-img.sh", [
      "--url", "http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz",
      "--sha512", "ab".repeat(64),
      "--checksums", "http://127.0.0.1:9/images/SHA512SUMS",
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("cannot download http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz");
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(false);
  });

  test("a .qcow2 URL is accepted directly and verified", () => {
    const dir = path.join(root, "qcow2");
    fs.mkdirSync(dir);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", path.join(dir, "disk.qcow2"), "16M"]);
    fs.writeFileSync(path.join(dir, "SHA512SUMS"), `${sha512(path.join(dir, "disk.qcow2"))}  disk.qcow2\n`);
    const cache = path.join(root, "cache-qcow2");
    const run = runScript("prepare-cloud-img.sh", [
      "--url", `${server.baseUrl}/qcow2/disk.qcow2`,
      "--sha512", sha512(path.join(dir, "disk.qcow2")),
      "--checksums", `${server.baseUrl}/qcow2/SHA512SUMS`,
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
    expect(run.status).toBe(0);
    expect(JSON.parse(execFileSync("qemu-img", ["info", "--output=json", path.join(cache, "current.qcow2")], { encoding: "utf8" })).format).toBe("qcow2");
  });
});
