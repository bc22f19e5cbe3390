// Acquire: download, verify against the sha512 it is handed (read from
// SHA512SUMS at synth, lib/config/image-release.ts) and unpack a cloud image in
// one pass, cached by checksum as a sparse raw disk. Small archives made here
// stand in for Debian's, served on loopback.
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checksumFor } from "../../lib/config/image-release";
import { SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { runScript, ScriptRun } from "../../testkit/image";

const ARCHIVE = "debian-13-generic-amd64.tar.xz";
const MIB = 1024 * 1024;

function sha512(file: string): string {
  return execFileSync("sha512sum", [file], { encoding: "utf8" }).split(" ")[0];
}

/**
 * A Debian-like release folder: ARCHIVE holding `member` (random bytes, so xz cannot shrink
 * them much, then a hole, packed sparse as Debian packs disk.raw), and SHA512SUMS; returns
 * the sha512 of the member.
 */
function makeRelease(dir: string, options: { member?: string; sizeMiB?: number; holeMiB?: number; sums?: (sha: string) => string } = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), "aq-archive-"));
  const member = path.join(staging, options.member ?? "disk.raw");
  execFileSync("dd", ["if=/dev/urandom", `of=${member}`, "bs=1M", `count=${options.sizeMiB ?? 4}`], { stdio: "ignore" });
  fs.truncateSync(member, ((options.sizeMiB ?? 4) + (options.holeMiB ?? 0)) * MIB);
  const memberSha512 = sha512(member);
  // xz -0: random bytes do not shrink at any level; the fast one keeps setup short on a busy host.
  execFileSync("tar", ["-C", staging, "--sparse", "-cJf", path.join(dir, ARCHIVE), path.basename(member)], { env: { ...process.env, XZ_OPT: "-0" } });
  fs.rmSync(staging, { recursive: true, force: true });
  const sha = sha512(path.join(dir, ARCHIVE));
  const sums = options.sums ? options.sums(sha) : `${"0".repeat(128)}  debian-13-generic-amd64.json\n${sha}  ${ARCHIVE}\n`;
  fs.writeFileSync(path.join(dir, "SHA512SUMS"), sums);
  return memberSha512;
}

/** Processes that have `file` open (none may be left once a run has ended). */
function holders(file: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
    try {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file) found.push(pid);
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

describe("acquire the cloud image", () => {
  let root: string;
  let server: FileServer;
  let goodMember: string;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "aq-acquire-"));
    goodMember = makeRelease(path.join(root, "good"), { sizeMiB: 8, holeMiB: 56 });
    makeRelease(path.join(root, "mismatch"), { sums: () => `${"ab".repeat(64)}  ${ARCHIVE}\n` });
    makeRelease(path.join(root, "nodisk"), { member: "root.img" });
    makeRelease(path.join(root, "truncated"));
    const truncated = path.join(root, "truncated", ARCHIVE);
    fs.truncateSync(truncated, Math.floor(fs.statSync(truncated).size / 2));
    fs.writeFileSync(path.join(root, "truncated", "SHA512SUMS"), `${sha512(truncated)}  ${ARCHIVE}\n`);
    // A whole archive with bytes after it: tar has all of disk.raw and ends well, xz does not.
    makeRelease(path.join(root, "trailing"));
    const trailing = path.join(root, "trailing", ARCHIVE);
    fs.appendFileSync(trailing, Buffer.alloc(4096, 0x5a));
    fs.writeFileSync(path.join(root, "trailing", "SHA512SUMS"), `${sha512(trailing)}  ${ARCHIVE}\n`);
    // Its first bytes changed in transit: xz gives up at once, the sha512 still covers every byte.
    makeRelease(path.join(root, "corrupt"), { sizeMiB: 8 });
    const corrupt = path.join(root, "corrupt", ARCHIVE);
    const bytes = fs.readFileSync(corrupt);
    bytes.fill(0xff, 0, 64);
    fs.writeFileSync(corrupt, bytes);
    server = await serveDirectory(root);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** The sha512 the release's SHA512SUMS gives, as synth reads it. */
  const published = (release: string) => checksumFor(fs.readFileSync(path.join(root, release, "SHA512SUMS"), "utf8"), ARCHIVE) as string;
  const args = (release: string, cache: string, sha512 = published(release)) => [
    "--url",
    `${server.baseUrl}/${release}/${ARCHIVE}`,
    "--sha512",
    sha512,
    "--checksums",
    `${server.baseUrl}/${release}/SHA512SUMS`,
    "--cache-dir",
    cache,
    "--link",
    path.join(cache, "current.raw"),
  ];
  const acquire = (release: string, cache: string, sha512 = published(release)) => runScript("prepare-cloud-img.sh", args(release, cache, sha512));
  const files = (dir: string) => (fs.existsSync(dir) ? execFileSync("find", [dir, "-type", "f"], { encoding: "utf8" }).trim().split("\n").filter(Boolean) : []);
  const leftovers = (cache: string) => files(cache).filter((f) => /\.part$|\/\.acquire\.|\.tmp/.test(f));
  const archiveRequests = (release: string) => server.requests().filter((r) => r.path === `/${release}/${ARCHIVE}`);
  const partOf = (release: string, cache: string) => path.join(cache, "downloads", `${published(release)}.${ARCHIVE}.part`);

  test("a verified archive becomes a cached sparse raw disk in one pass, and a second run downloads nothing", () => {
    const cache = path.join(root, "cache-good");
    const first = acquire("good", cache);
    expect(first.status).toBe(0);
    expect(first.stderr).toContain("downloading, verifying and unpacking disk.raw in one pass");
    const image = fs.realpathSync(path.join(cache, "current.raw"));
    expect(image).toBe(path.join(cache, "base", sha512(path.join(root, "good", ARCHIVE)), "disk.raw"));
    expect(sha512(image)).toBe(goodMember);
    const info = JSON.parse(execFileSync("qemu-img", ["info", "-f", "raw", "--output=json", image], { encoding: "utf8" }));
    expect(info["virtual-size"]).toBe(64 * MIB);
    // The hole stays a hole: 8 MiB of data, not 64 MiB written.
    expect(fs.statSync(image).blocks * 512).toBeLessThan(12 * MIB);
    expect((fs.statSync(image).mode & 0o777).toString(8)).toBe("644");
    expect(archiveRequests("good")).toHaveLength(1);
    // One copy kept: the raw disk (the archive is gone once it is unpacked).
    expect(leftovers(cache)).toEqual([]);
    expect(
      files(path.join(cache, "base"))
        .map((f) => path.basename(f))
        .sort(),
    ).toEqual(["disk.raw", "source.json"]);

    const second = acquire("good", cache);
    expect(second.status).toBe(0);
    expect(second.stderr).toMatch(/cached/);
    expect(archiveRequests("good")).toHaveLength(1);
    expect(server.requests().filter((r) => r.path === "/good/SHA512SUMS")).toEqual([]);
    // What synth reads when SHA512SUMS cannot be read: which image the link points at, beside it.
    expect(JSON.parse(fs.readFileSync(path.join(cache, "current.raw.json"), "utf8"))).toMatchObject({
      sha512: sha512(path.join(root, "good", ARCHIVE)),
      url: expect.stringContaining(`/good/${ARCHIVE}`),
    });
    expect(fs.readlinkSync(path.join(cache, "current.raw"))).toBe(path.join(cache, "base", sha512(path.join(root, "good", ARCHIVE)), "disk.raw"));
  });

  test("an interrupted download keeps its .part and the next run resumes where it stopped", async () => {
    const cache = path.join(root, "cache-resume");
    await server.cutNext(`/good/${ARCHIVE}`, 3 * MIB);
    const interrupted = acquire("good", cache);
    expect(interrupted.status).toBe(1);
    expect(interrupted.stderr).toMatch(/cannot download http:\/\/127\.0\.0\.1:\d+\/good\/debian-13-generic-amd64\.tar\.xz \(curl exit \d+\); \S+ kept in \S+\.part to resume next time/);
    expect(fs.statSync(partOf("good", cache)).size).toBe(3 * MIB);
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
    const resumed = acquire("good", cache);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toContain("resuming");
    const last = archiveRequests("good").pop();
    expect(last).toMatchObject({ range: `bytes=${3 * MIB}-`, status: 206 });
    expect(sha512(path.join(cache, "current.raw"))).toBe(goodMember);
    expect(leftovers(cache)).toEqual([]);
  }, 120_000);

  test("a whole .part left by a run stopped before unpacking is unpacked without downloading it again", () => {
    const cache = path.join(root, "cache-whole-part");
    fs.mkdirSync(path.join(cache, "downloads"), { recursive: true });
    fs.copyFileSync(path.join(root, "good", ARCHIVE), partOf("good", cache));
    const run = acquire("good", cache);
    expect(run.status).toBe(0);
    // Asked for what follows the .part: nothing (416), so no byte came twice.
    expect(archiveRequests("good").pop()).toMatchObject({ range: `bytes=${fs.statSync(path.join(root, "good", ARCHIVE)).size}-`, status: 416 });
    expect(sha512(path.join(cache, "current.raw"))).toBe(goodMember);
    expect(leftovers(cache)).toEqual([]);
  });

  test("SIGTERM during a stalled download stops every process of the pass, caches nothing and keeps the .part to resume", async () => {
    const cache = path.join(root, "cache-sigterm");
    await server.stallNext(`/good/${ARCHIVE}`, 2 * MIB);
    const part = partOf("good", cache);
    const child = spawn("sh", [path.join(SCRIPTS_DIR, "prepare-cloud-img.sh"), ...args("good", cache)], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const ended = new Promise<ScriptRun>((resolve) => child.on("close", (status, signal) => resolve({ status, signal, stderr })));
    for (let i = 0; i < 300 && !(fs.existsSync(part) && fs.statSync(part).size === 2 * MIB); i++) await new Promise((r) => setTimeout(r, 100));
    expect(fs.statSync(part).size).toBe(2 * MIB);
    expect(holders(part).length).toBeGreaterThan(0);
    child.kill("SIGTERM");
    const run = await ended;
    expect(run.status).toBe(143);
    expect(run.stderr).toContain("failed (exit 143)");
    expect(holders(part)).toEqual([]);
    expect(fs.statSync(part).size).toBe(2 * MIB);
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
    expect(fs.readdirSync(cache).filter((entry) => entry.startsWith(".acquire."))).toEqual([]);
    const resumed = acquire("good", cache);
    expect(resumed.status).toBe(0);
    expect(archiveRequests("good").pop()).toMatchObject({ range: `bytes=${2 * MIB}-`, status: 206 });
    expect(sha512(path.join(cache, "current.raw"))).toBe(goodMember);
  }, 120_000);

  test.each([
    ["mismatch", /checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/mismatch\/debian-13-generic-amd64\.tar\.xz: expected abab/],
    ["truncated", /archive at http:\/\/127\.0\.0\.1:\d+\/truncated\/debian-13-generic-amd64\.tar\.xz is corrupt or truncated: .*xz exit 1/],
    ["trailing", /archive at http:\/\/127\.0\.0\.1:\d+\/trailing\/debian-13-generic-amd64\.tar\.xz is corrupt or truncated: .*\(xz exit 1, tar exit 0\)/],
    ["nodisk", /archive at http:\/\/127\.0\.0\.1:\d+\/nodisk\/debian-13-generic-amd64\.tar\.xz has no disk\.raw/],
  ])("bad input '%s' fails with a clear message and caches nothing", (release, message) => {
    const cache = path.join(root, `cache-${release}`);
    const run = acquire(release, cache);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(message);
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
    expect(leftovers(cache)).toEqual([]);
  });

  test("bytes damaged in transit are named by the sha512 of every byte received, though xz gave up at the first", () => {
    const cache = path.join(root, "cache-corrupt");
    const run = acquire("corrupt", cache);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`checksum mismatch for ${server.baseUrl}/corrupt/${ARCHIVE}: expected ${published("corrupt")} got ${sha512(path.join(root, "corrupt", ARCHIVE))}`);
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(files(cache)).toEqual([]);
  });

  test("an image that changed since the plan (--sha512) is refused, naming SHA512SUMS, and nothing is cached", () => {
    const cache = path.join(root, "cache-planned");
    const run = acquire("good", cache, "cd".repeat(64));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/good\/debian-13-generic-amd64\.tar\.xz: expected cdcd.*; if a new image was published behind this URL since http:\/\/127\.0\.0\.1:\d+\/good\/SHA512SUMS was read, run the deploy again/,
    );
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(files(path.join(cache, "base"))).toEqual([]);
    expect(acquire("good", cache).status).toBe(0);
  });

  test("without --sha512 nothing is downloaded: the error names the SHA512SUMS that lists it", () => {
    const cache = path.join(root, "cache-no-sha512");
    const requestsBefore = server.requests().length;
    const run = runScript("prepare-cloud-img.sh", [
      "--url",
      `${server.baseUrl}/good/${ARCHIVE}`,
      "--checksums",
      `${server.baseUrl}/good/SHA512SUMS`,
      "--cache-dir",
      cache,
      "--link",
      path.join(cache, "current.raw"),
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/missing --sha512: the sha512 of debian-13-generic-amd64\.tar\.xz is unknown \(http:\/\/127\.0\.0\.1:\d+\/good\/SHA512SUMS lists it\)/);
    expect(server.requests().length).toBe(requestsBefore);
    expect(fs.existsSync(cache)).toBe(false);
  });

  test("an unreachable URL is named in the error", () => {
    const cache = path.join(root, "cache-unreachable");
    const run = runScript("prepare-cloud-img.sh", [
      "--url",
      "http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz",
      "--sha512",
      "ab".repeat(64),
      "--checksums",
      "http://127.0.0.1:9/images/SHA512SUMS",
      "--cache-dir",
      cache,
      "--link",
      path.join(cache, "current.raw"),
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("cannot download http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz");
    expect(fs.existsSync(path.join(cache, "current.raw"))).toBe(false);
    expect(leftovers(cache)).toEqual([]);
  });

  test("a .qcow2 URL is verified and cached as the same disk, raw", () => {
    const dir = path.join(root, "qcow2");
    fs.mkdirSync(dir);
    const source = path.join(dir, "disk.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", source, "16M"]);
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 1M 2M", source], { stdio: "ignore" });
    fs.writeFileSync(path.join(dir, "SHA512SUMS"), `${sha512(source)}  disk.qcow2\n`);
    const cache = path.join(root, "cache-qcow2");
    const run = runScript("prepare-cloud-img.sh", [
      "--url",
      `${server.baseUrl}/qcow2/disk.qcow2`,
      "--sha512",
      sha512(source),
      "--checksums",
      `${server.baseUrl}/qcow2/SHA512SUMS`,
      "--cache-dir",
      cache,
      "--link",
      path.join(cache, "current.raw"),
    ]);
    expect(run.status).toBe(0);
    const image = path.join(cache, "current.raw");
    expect(JSON.parse(execFileSync("qemu-img", ["info", "-f", "raw", "--output=json", image], { encoding: "utf8" }))["virtual-size"]).toBe(16 * MIB);
    expect(execFileSync("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", source, image], { encoding: "utf8" })).toContain("Images are identical");
    expect(leftovers(cache)).toEqual([]);
  });
});
