// npm run bench -- image, acquire: acquiring and customizing images, and what is published.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../lib/config/config";
import { customizeArgs } from "../lib/constructs/customized-image";
import { scriptCommand, SCRIPTS_DIR } from "../lib/constructs/host-step";
import { readProfile } from "../lib/config/profile";
import { FixtureImage, fixtureImage } from "../testkit/fixture-image";
import { serveDirectory } from "../testkit/http-server";
import { addRow, diskBytes, mib, rows, seconds, sh, timed } from "./table";

/**
 * Acquire rows: the by-hand baseline, then prepare-cloud-img.sh's one pass, on the
 * same archive served on loopback (read once first, so neither pays for the disk);
 * returns the link to the acquired base (a raw disk).
 */
export function benchAcquire(fixture: FixtureImage, baseUrl: string, work: string): string {
  const url = `${baseUrl}/${fixture.archiveName}`;
  const sums = `${baseUrl}/SHA512SUMS`;
  sh(`cat ${path.join(fixture.dir, fixture.archiveName)} >/dev/null`);
  const byHand = path.join(work, "by-hand");
  fs.mkdirSync(byHand);
  const baseline = timed("acquire by hand (curl + sha512sum -c + tar -x + qemu-img convert)", () =>
    sh(
      `cd ${byHand} && curl -fsS -o ${fixture.archiveName} ${url} && curl -fsS ${sums} | grep ' ${fixture.archiveName}$' | sha512sum -c --quiet - ` +
        `&& tar -xJf ${fixture.archiveName} disk.raw && qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2`,
    ),
  );
  const cache = path.join(work, "cache");
  const link = path.join(work, "base.raw");
  const acquire = `sh ${SCRIPTS_DIR}/prepare-cloud-img.sh --url ${url} --sha512 ${fixture.sha512} --checksums ${sums} --cache-dir ${cache} --link ${link}`;
  const first = timed("acquire with prepare-cloud-img.sh (one pass)", () => sh(acquire));
  addRow("acquire: prepare-cloud-img.sh (one pass) vs by hand", first, baseline);
  addRow("acquire: disk used after (raw base vs archive + raw + qcow2)", diskBytes(cache), diskBytes(byHand), mib);
  fs.rmSync(byHand, { recursive: true, force: true });
  const again = timed("acquire again, no change", () => sh(acquire));
  addRow("acquire: no-change second run vs first run", again, first);
  return link;
}

export async function benchImage(acquireOnly = false): Promise<void> {
  const fixture = fixtureImage("trixie");
  const server = await serveDirectory(fixture.dir);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-"));
  try {
    const link = benchAcquire(fixture, server.baseUrl, work);
    if (acquireOnly) return;

    const output = path.join(work, "images", "minimal.qcow2");
    const minimal = readProfile(path.join(PROJECT_DIR, "profiles"), "minimal", "trixie");
    const customize = scriptCommand("customize-image.sh", customizeArgs(minimal, "trixie", link, output, { secureBoot: false }));
    const ours = timed("customize minimal with customize-image.sh", () => sh(customize));
    const packages = minimal.packages;
    // virt-customize's own copy of the base, as a qcow2 (the acquired base is raw).
    const copy = path.join(work, "virt-customize.qcow2");
    execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", link, copy]);
    const virtCustomize = spawnSync("sh", ["-c", "command -v virt-customize"]).status === 0;
    if (virtCustomize) {
      try {
        const theirs = timed("virt-customize --install of the same packages", () =>
          // The image's own https mirrors are not reachable here, as for our customization;
          // point them at plain http like the host's apt configuration, then install.
          sh(
            `virt-customize -q -a ${copy} --network --run-command "sed -i 's#https://#http://#' /etc/apt/mirrors/*.list /etc/apt/sources.list.d/* 2>/dev/null; true" --install ${packages.join(",")}`,
            { LIBGUESTFS_BACKEND: "direct", LIBGUESTFS_BACKEND_SETTINGS: "force_tcg" },
          ),
        );
        addRow("customize minimal: ours vs virt-customize --install", ours, theirs);
      } catch (error) {
        rows.push({ measure: "customize minimal: ours vs virt-customize --install", ours: seconds(ours), baseline: `failed: ${(error as Error).message.split("\n")[0].slice(0, 40)}`, ratio: "n/a" });
      }
    } else {
      rows.push({ measure: "customize minimal: ours vs virt-customize --install", ours: seconds(ours), baseline: "virt-customize not installed (apt-get install guestfs-tools)", ratio: "n/a" });
    }
    // Issue 15: a one-line change in minimal's last commands.d script rebuilds that layer only
    // (the packages' and the earlier layers are cached in images/layers/), into a new image as the stack names it.
    const edited = path.join(work, "profiles");
    fs.cpSync(path.join(PROJECT_DIR, "profiles"), edited, { recursive: true });
    const lastScript = path.join(
      edited,
      "minimal",
      "commands.d",
      fs
        .readdirSync(path.join(edited, "minimal", "commands.d"))
        .sort()
        .pop() ?? "",
    );
    fs.appendFileSync(lastScript, "echo edited >/etc/btw-bench-edit\n");
    const rebuild = scriptCommand(
      "customize-image.sh",
      customizeArgs(readProfile(edited, "minimal", "trixie"), "trixie", link, path.join(work, "images", "minimal-edited.qcow2"), { secureBoot: false }),
    );
    const edit = timed(`customize minimal again after a one-line change to ${path.basename(lastScript)}`, () => sh(rebuild));
    addRow("customize minimal: last commands.d script changed vs whole customization", edit, ours);
    // customize-image.sh itself again on the same input: every layer cached, the image checked, cleaned and written again.
    const again = timed("customize minimal again with customize-image.sh, no change", () => sh(customize));
    addRow("customize: no-change second run vs first run", again, ours);
    publishedSizes(output, link, path.join(fixture.dir, fixture.archiveName), work);
  } finally {
    await server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The size of what CI publishes (publish-image.sh) next to Debian's own archive of the
 * base: minimal as CI publishes it, with zstd instead of zlib, and the slim profile
 * (no documentation, manual pages or translations), also as Debian packs its image
 * (tar.xz of the raw disk), against a free GitHub repository's 100 MiB per file.
 */
export function publishedSizes(minimal: string, base: string, debianArchive: string, work: string): void {
  const debianBytes = fs.statSync(debianArchive).size;
  const publish = (image: string, compression: string) => {
    const output = path.join(work, "dist", `${path.basename(image, ".qcow2")}-${compression}.qcow2`);
    sh(`sh ${SCRIPTS_DIR}/publish-image.sh --image ${image} --output ${output} --compression ${compression}`);
    return fs.statSync(output).size;
  };
  addRow("published minimal (qcow2, zlib: as CI) vs Debian's archive of the base", publish(minimal, "zlib"), debianBytes, mib);
  addRow("published minimal (qcow2, zstd) vs Debian's archive of the base", publish(minimal, "zstd"), debianBytes, mib);
  const slim = path.join(work, "images", "slim.qcow2");
  timed("customize slim", () => sh(scriptCommand("customize-image.sh", customizeArgs(readProfile(path.join(PROJECT_DIR, "profiles"), "slim", "trixie"), "trixie", base, slim, { secureBoot: false }))));
  addRow("published slim (qcow2, zlib) vs Debian's archive of the base", publish(slim, "zlib"), debianBytes, mib);
  addRow("published slim (qcow2, zstd) vs Debian's archive of the base", publish(slim, "zstd"), debianBytes, mib);
  const raw = path.join(work, "disk.raw");
  execFileSync("qemu-img", ["convert", "-O", "raw", slim, raw]);
  const tarXz = path.join(work, "dist", "slim.tar.xz");
  timed("tar.xz of slim's raw disk (xz -9, as Debian packs its images)", () => sh(`tar -C ${work} --sparse -cf - disk.raw | xz -9 -T0 >${tarXz}`));
  addRow("published slim (tar.xz of the raw disk, xz -9) vs Debian's archive of the base", fs.statSync(tarXz).size, debianBytes, mib);
  fs.rmSync(raw);
}
