// What Secure Boot would refuse in an image (scripts/steps/lib/secure-boot.sh,
// run by customize-image.sh): unsigned kernels and unsigned modules no package
// ships, on small stand-in roots and on Debian's real trixie image.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR } from "../../lib/constructs/host-step";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { withImageRoot } from "../../testkit/image";

const LIB = path.join(SCRIPTS_DIR, "lib", "secure-boot.sh");
const KVER = "6.12.0-1-amd64";
const MARKER = "~Module signature appended~\n";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-secure-boot-"));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** unsigned_boot_files ROOT: its lines, sorted, and what it said on stderr; it must succeed. */
function runCheck(root: string): { files: string[]; stderr: string } {
  const run = spawnSync("sh", ["-c", '. "$1"; unsigned_boot_files "$2"', "sh", LIB, root], { encoding: "utf8" });
  expect(run.status).toBe(0);
  return { files: run.stdout.split("\n").filter(Boolean).sort(), stderr: run.stderr };
}

/** unsigned_boot_files ROOT, which must say nothing on stderr. */
function unsignedBootFiles(root: string): string[] {
  const { files, stderr } = runCheck(root);
  expect(stderr).toBe("");
  return files;
}

function write(root: string, file: string, content: Buffer | string): void {
  fs.mkdirSync(path.join(root, path.dirname(file)), { recursive: true });
  fs.writeFileSync(path.join(root, file), content);
}

/**
 * A PE/COFF header as an EFI stub kernel starts, with the certificate table (data
 * directory 4) of the given size; directories: how many the optional header has.
 */
function peImage(certificateSize: number, options: { pe32?: boolean; directories?: number } = {}): Buffer {
  const image = Buffer.alloc(4096);
  const directories = options.directories ?? 16;
  const fieldsSize = options.pe32 ? 96 : 112;
  image.write("MZ", 0, "latin1");
  image.writeUInt32LE(0x80, 0x3c);
  image.write("PE\0\0", 0x80, "latin1");
  image.writeUInt16LE(fieldsSize + directories * 8, 0x80 + 20);
  const optional = 0x80 + 24;
  image.writeUInt16LE(options.pe32 ? 0x10b : 0x20b, optional);
  image.writeUInt32LE(directories, optional + fieldsSize - 4);
  if (directories > 4) {
    image.writeUInt32LE(certificateSize ? 2048 : 0, optional + fieldsSize + 32);
    image.writeUInt32LE(certificateSize, optional + fieldsSize + 36);
  }
  return image;
}

function compress(tool: "xz" | "zstd" | "gzip", content: string): Buffer {
  return execFileSync(tool, ["-c"], { input: content });
}

describe("unsigned_boot_files: what Secure Boot would refuse", () => {
  test("kernels without a certificate table, or with an empty one, or not PE at all are named; signed ones are not", () => {
    const root = path.join(work, "kernels");
    write(root, "boot/vmlinuz-signed", peImage(1472));
    write(root, "boot/vmlinuz-signed-pe32", peImage(8, { pe32: true }));
    write(root, "boot/vmlinuz-empty-table", peImage(0));
    write(root, "boot/vmlinuz-empty-table-pe32", peImage(0, { pe32: true }));
    write(root, "boot/vmlinuz-no-table", peImage(1472, { directories: 4 }));
    write(root, "boot/vmlinuz-not-pe", Buffer.alloc(4096, 0x41));
    write(root, "boot/vmlinuz-truncated", peImage(1472).subarray(0, 0x90));
    write(root, "boot/config-signed", "not a kernel");
    expect(unsignedBootFiles(root)).toEqual(["/boot/vmlinuz-empty-table", "/boot/vmlinuz-empty-table-pe32", "/boot/vmlinuz-no-table", "/boot/vmlinuz-not-pe", "/boot/vmlinuz-truncated"]);
  });

  test("modules no package ships are named unless their (decompressed) tail is the signature marker; packaged ones are not read", () => {
    const root = path.join(work, "modules");
    // Merged /usr, as Debian's images: /lib is a link to usr/lib and packages list /lib/modules paths.
    fs.mkdirSync(path.join(root, "usr/lib"), { recursive: true });
    fs.symlinkSync("usr/lib", path.join(root, "lib"));
    const updates = `usr/lib/modules/${KVER}/updates/dkms`;
    const module = "\x7fELF module code\0\0";
    write(root, `${updates}/signed.ko`, module + "PKCS7" + MARKER);
    write(root, `${updates}/signed-xz.ko.xz`, compress("xz", module + MARKER));
    write(root, `${updates}/signed-zst.ko.zst`, compress("zstd", module + MARKER));
    write(root, `${updates}/signed-gz.ko.gz`, compress("gzip", module + MARKER));
    write(root, `${updates}/unsigned.ko`, module);
    write(root, `${updates}/unsigned-xz.ko.xz`, compress("xz", module));
    write(root, `${updates}/unsigned-zst.ko.zst`, compress("zstd", module));
    write(root, `${updates}/unsigned-gz.ko.gz`, compress("gzip", module));
    // The marker must be the last bytes, newline included: a NUL before it (dropped by a shell) does not make one.
    write(root, `${updates}/marker-without-newline.ko`, module + MARKER.trimEnd());
    write(root, `${updates}/notes.txt`, module);
    // Unsigned too, but shipped by a package (listed as its .list names it, under /lib) and so not read.
    write(root, `usr/lib/modules/${KVER}/kernel/packaged.ko`, module);
    write(root, `usr/lib/modules/${KVER}/kernel/packaged-xz.ko.xz`, compress("xz", module));
    write(root, "var/lib/dpkg/info/linux-image-test.list", `/lib/modules/${KVER}/kernel/packaged.ko\n/usr/lib/modules/${KVER}/kernel/packaged-xz.ko.xz\n`);
    expect(unsignedBootFiles(root)).toEqual(["marker-without-newline.ko", "unsigned-gz.ko.gz", "unsigned-xz.ko.xz", "unsigned-zst.ko.zst", "unsigned.ko"].map((file) => `/${updates}/${file}`));
  });

  test("only the decompressed content counts: a marker after the compressed data is no signature, and xz says why it cannot read the module", () => {
    const root = path.join(work, "corrupt");
    const file = `lib/modules/${KVER}/updates/marker-outside-xz.ko.xz`;
    write(root, file, Buffer.concat([compress("xz", "\x7fELF module code\0\0"), Buffer.from(MARKER)]));
    const { files, stderr } = runCheck(root);
    expect(files).toEqual([`/${file}`]);
    expect(stderr).toMatch(/xz: .*marker-outside-xz\.ko\.xz: Compressed data is corrupt/);
  });

  test("without merged /usr both module folders are read, and /lib/modules paths of packages match only /lib/modules", () => {
    const root = path.join(work, "split-usr");
    write(root, `lib/modules/${KVER}/extra/packaged.ko`, "code");
    write(root, `lib/modules/${KVER}/extra/unpackaged.ko`, "code");
    write(root, `usr/lib/modules/${KVER}/extra/packaged.ko`, "code");
    write(root, "var/lib/dpkg/info/test.list", `/lib/modules/${KVER}/extra/packaged.ko\n`);
    expect(unsignedBootFiles(root)).toEqual([`/lib/modules/${KVER}/extra/unpackaged.ko`, `/usr/lib/modules/${KVER}/extra/packaged.ko`]);
  });

  test("links are not followed out of the root: an absolute /lib or a vmlinuz link naming a host file", () => {
    const outside = path.join(work, "outside");
    write(outside, `modules/${KVER}/unsigned.ko`, "code");
    write(outside, "vmlinuz", "not a PE image");
    const root = path.join(work, "absolute-links");
    fs.mkdirSync(path.join(root, "boot"), { recursive: true });
    fs.symlinkSync(outside, path.join(root, "lib"));
    fs.symlinkSync(path.join(outside, "vmlinuz"), path.join(root, "boot/vmlinuz-link"));
    expect(unsignedBootFiles(root)).toEqual([]);
  });

  test("Debian's trixie image has nothing unsigned, found in a few seconds; its kernel with the signature removed is named", () => {
    const base = acquireFixtureBase("trixie", work);
    const kernels = withImageRoot(base, (root) => {
      const started = Date.now();
      expect(unsignedBootFiles(root)).toEqual([]);
      expect(Date.now() - started).toBeLessThan(5000);
      const names = fs.readdirSync(path.join(root, "boot")).filter((file) => file.startsWith("vmlinuz-"));
      // What is not read must be what packages ship: every module is listed by some package.
      const unpackaged = spawnSync("sh", ["-c", '. "$1"; unpackaged_modules "$2"', "sh", LIB, root], { encoding: "utf8" });
      expect({ status: unpackaged.status, stdout: unpackaged.stdout }).toEqual({ status: 0, stdout: "" });
      expect(execFileSync("find", ["usr/lib/modules", "-name", "*.ko*"], { cwd: root, encoding: "utf8" }).split("\n").length).toBeGreaterThan(1000);
      return names.map((name) => ({ name, content: fs.readFileSync(path.join(root, "boot", name)) }));
    });
    expect(kernels).toHaveLength(1);
    // As sbattach --remove leaves it: the certificate table emptied and the signature cut off.
    const { name, content } = kernels[0];
    const optional = content.readUInt32LE(0x3c) + 24;
    expect(content.readUInt16LE(optional)).toBe(0x20b);
    const table = optional + 112 + 32;
    const [offset, size] = [content.readUInt32LE(table), content.readUInt32LE(table + 4)];
    expect(size).toBeGreaterThan(0);
    const stripped = Buffer.from(content.subarray(0, offset));
    stripped.writeUInt32LE(0, table);
    stripped.writeUInt32LE(0, table + 4);
    const root = path.join(work, "stripped-kernel");
    write(root, `boot/${name}`, stripped);
    write(root, `boot/${name}.signed`, content);
    expect(unsignedBootFiles(root)).toEqual([`/boot/${name}`]);
  }, 1_200_000);
});
