// Acquire: download, verify, extract and convert a cloud image, cached by
// checksum. Small archives made here stand in for Debian's, served on loopback.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
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
    makeRelease(path.join(root, "noline"), { sums: (sha) => `${sha}  debian-13-nocloud-amd64.tar.xz\n` });
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

  const acquire = (release: string, cache: string, extra: string[] = []) =>
    runScript("prepare-cloud-img.sh", [
      "--url", `${server.baseUrl}/${release}/${ARCHIVE}`,
      "--checksums", `${server.baseUrl}/${release}/SHA512SUMS`,
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
      ...extra,
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
    expect(files(cache).filter((f) => /\.part$|\.tmp|\.partial/.test(f))).toEqual([]);
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
    ["noline", /SHA512SUMS at http:\/\/127\.0\.0\.1:\d+\/noline\/SHA512SUMS has no line for debian-13-generic-amd64\.tar\.xz/],
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

  test("an image that changed since the plan (--sha512) is refused before anything is downloaded", () => {
    const cache = path.join(root, "cache-planned");
    const requestsBefore = server.requests().filter((r) => r.path === `/good/${ARCHIVE}`).length;
    const run = acquire("good", cache, ["--sha512", "cd".repeat(64)]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/debian-13-generic-amd64\.tar\.xz changed since the plan \(planned sha512 cdcdcdcdcdcdcdcd\.\.\., now [0-9a-f]{16}\.\.\.\): run the deploy again/);
    expect(server.requests().filter((r) => r.path === `/good/${ARCHIVE}`).length).toBe(requestsBefore);
    expect(fs.existsSync(path.join(cache, "current.qcow2"))).toBe(false);
    const planned = acquire("good", cache, ["--sha512", sha512(path.join(root, "good", ARCHIVE))]);
    expect(planned.status).toBe(0);
  });

  test("an unreachable URL is named in the error", () => {
    const cache = path.join(root, "cache-unreachable");
    const run = runScript("prepare-cloud-img.sh", [
      "--url", "http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz",
      "--checksums", "http://127.0.0.1:9/images/SHA512SUMS",
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("http://127.0.0.1:9/images/SHA512SUMS");
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
      "--checksums", `${server.baseUrl}/qcow2/SHA512SUMS`,
      "--cache-dir", cache,
      "--link", path.join(cache, "current.qcow2"),
    ]);
    expect(run.status).toBe(0);
    expect(JSON.parse(execFileSync("qemu-img", ["info", "--output=json", path.join(cache, "current.qcow2")], { encoding: "utf8" })).format).toBe("qcow2");
  });
});
