// npm run bench: measures btw-img against baselines run in the same process on
// the same input, and prints a table of ratios. Never part of the tests.
//
//   npm run bench                 all sections
//   npm run bench -- image        acquire + customize only
//   npm run bench -- baremetal    partition capture only
//   npm run bench -- lab          lab deploy only
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../lib/config";
import { customizeArgs } from "../lib/customized-image";
import { scriptCommand } from "../lib/host-step";
import { readProfile } from "../lib/profile";
import { LabWorkspace } from "../__tests__/helpers/cdktf-cli";
import { customizedTestImage } from "../__tests__/helpers/baremetal";
import { fixtureImage } from "../__tests__/helpers/fixture-image";
import { serveDirectory } from "../__tests__/helpers/http-server";
import { testLab } from "../__tests__/helpers/lab-yaml";
import { forceCleanup } from "../__tests__/helpers/libvirt";

interface Row {
  measure: string;
  ours: string;
  baseline: string;
  ratio: string;
}

const rows: Row[] = [];
// Set by the lab section: the baseline for a bare-metal machine's first boot.
let oneVmDeployMs: number | undefined;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function timed(label: string, run: () => void): number {
  process.stderr.write(`bench: ${label} ...\n`);
  const start = Date.now();
  run();
  const elapsed = Date.now() - start;
  process.stderr.write(`bench: ${label}: ${seconds(elapsed)}\n`);
  return elapsed;
}

async function timedAsync(label: string, run: () => Promise<unknown>): Promise<number> {
  process.stderr.write(`bench: ${label} ...\n`);
  const start = Date.now();
  await run();
  const elapsed = Date.now() - start;
  process.stderr.write(`bench: ${label}: ${seconds(elapsed)}\n`);
  return elapsed;
}

function sh(command: string, env: NodeJS.ProcessEnv = {}): void {
  execFileSync("sh", ["-c", command], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...env } });
}

function addRow(measure: string, ours: number, baseline: number, format = seconds): void {
  rows.push({ measure, ours: format(ours), baseline: format(baseline), ratio: baseline > 0 ? (ours / baseline).toFixed(2) : "n/a" });
}

async function benchImage(): Promise<void> {
  const fixture = fixtureImage("trixie");
  const server = await serveDirectory(fixture.dir);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-"));
  try {
    const url = `${server.baseUrl}/${fixture.archiveName}`;
    const sums = `${server.baseUrl}/SHA512SUMS`;
    const byHand = path.join(work, "by-hand");
    fs.mkdirSync(byHand);
    const baseline = timed("acquire by hand (curl + sha512sum -c + tar -x + qemu-img convert)", () =>
      sh(
        `cd ${byHand} && curl -fsS -o ${fixture.archiveName} ${url} && curl -fsS ${sums} | grep ' ${fixture.archiveName}$' | sha512sum -c --quiet - ` +
          `&& tar -xJf ${fixture.archiveName} disk.raw && qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2`,
      ),
    );
    const cache = path.join(work, "cache");
    const link = path.join(work, "base.qcow2");
    const acquire = `sh ${PROJECT_DIR}/scripts/prepare-cloud-img.sh --url ${url} --checksums ${sums} --cache-dir ${cache} --link ${link}`;
    const first = timed("acquire with prepare-cloud-img.sh", () => sh(acquire));
    addRow("acquire: prepare-cloud-img.sh vs by hand", first, baseline);
    const again = timed("acquire again, no change", () => sh(acquire));
    addRow("acquire: no-change second run vs first run", again, first);

    const output = path.join(work, "images", "minimal.qcow2");
    const minimal = readProfile(path.join(PROJECT_DIR, "profiles"), "minimal", "trixie");
    const customize = scriptCommand("customize-image.sh", customizeArgs(minimal, "trixie", link, output));
    const ours = timed("customize minimal with customize-image.sh", () => sh(customize));
    const packages = minimal.packages;
    const copy = path.join(work, "virt-customize.qcow2");
    fs.copyFileSync(fs.realpathSync(link), copy);
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
    // What a no-change deploy does for this step: the image exists, so it is reused.
    const reuse = timed("customize again, no change (the stack's reuse check)", () => sh(`test -e ${output} || ${customize}`));
    addRow("customize: no-change second run vs first run", reuse, ours);
  } finally {
    await server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function benchBaremetal(): Promise<void> {
  const image = await customizedTestImage("minimal");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-bm-"));
  try {
    const artifacts = path.join(work, "artifacts");
    const capture = timed("capture-partitions.sh", () =>
      sh(`sh ${PROJECT_DIR}/scripts/capture-partitions.sh --image ${image} --output-dir ${artifacts} --profile minimal`),
    );
    const raw = path.join(work, "disk.raw");
    execFileSync("qemu-img", ["convert", "-O", "raw", image, raw]);
    const dd = timed("dd of the whole disk (with zstd, like the artifacts)", () => sh(`dd if=${raw} bs=4M status=none | zstd -q -T0 -o ${work}/disk.raw.zst`));
    addRow("capture: partclone artifacts vs dd of the whole disk", capture, dd);
    const manifest = JSON.parse(fs.readFileSync(path.join(artifacts, "manifest.json"), "utf8"));
    const artifactBytes = manifest.partitions.reduce((sum: number, p: any) => sum + p.artifact_size, 0);
    const partitionBytes = manifest.partitions.reduce((sum: number, p: any) => sum + p.size_bytes, 0);
    const rootUsed = Number(execFileSync("sh", ["-c", `. ${PROJECT_DIR}/scripts/lib/image-mount.sh; l=$(attach_loop ${raw} ro); r=$(root_partition $l); dumpe2fs -h $r 2>/dev/null | awk -F: '/^Block count/{c=$2} /^Free blocks/{f=$2} /^Block size/{b=$2} END{print (c-f)*b}'; losetup -d $l`], { encoding: "utf8" }).trim());
    addRow("artifact bytes vs used bytes (root file system)", artifactBytes, rootUsed, mib);
    addRow("artifact bytes vs raw partition sizes", artifactBytes, partitionBytes, mib);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  // The PXE end-to-end test is the real blank-machine run; it reports its timings to a file.
  const timingsFile = path.join(os.tmpdir(), `btw-bench-pxe-${process.pid}.json`);
  const pxe = spawnSync("npx", ["jest", "__tests__/e2e/baremetal-pxe.test.ts", "--selectProjects", "e2e"], {
    cwd: PROJECT_DIR,
    env: { ...process.env, BTW_BENCH_TIMINGS: timingsFile },
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (pxe.status !== 0 || !fs.existsSync(timingsFile)) {
    rows.push({ measure: "blank machine: power-on to cloud-init done", ours: "failed", baseline: "", ratio: "n/a" });
    return;
  }
  const timings: Record<string, { restoreMs: number; firstBootMs: number }> = JSON.parse(fs.readFileSync(timingsFile, "utf8"));
  fs.rmSync(timingsFile, { force: true });
  for (const [kind, { restoreMs, firstBootMs }] of Object.entries(timings)) {
    const total = restoreMs + firstBootMs;
    if (oneVmDeployMs === undefined) {
      rows.push({ measure: `blank ${kind} machine: power-on to cloud-init done (PXE restore + reboot)`, ours: seconds(total), baseline: "run with the lab section", ratio: "n/a" });
    } else {
      addRow(`blank ${kind} machine power-on to cloud-init done vs lab VM deploy to ready`, total, oneVmDeployMs);
    }
    addRow(`blank ${kind} machine: PXE restore vs reboot to cloud-init done`, restoreMs, firstBootMs);
  }
}

async function benchLab(): Promise<void> {
  const fixture = fixtureImage("trixie");
  const server = await serveDirectory(fixture.dir);
  const lab = (name: string, vms: number) =>
    testLab({
      name,
      imageBaseUrl: server.baseUrl,
      vms: Array.from({ length: vms }, (_, i) => ({ name: `vm${i + 1}` })),
      extra: { network: { name: `${name}-net`, mode: "isolated", cidr: "10.213.41.0/24" }, readiness: { timeout: 1800 } },
    });
  const deployTimed = async (name: string, vms: number) => {
    const workspace = new LabWorkspace();
    fs.writeFileSync(workspace.configFile, stringify(lab(name, vms)));
    // Build the image first so the timing is the lab itself, not the first customization.
    await workspace.deploy();
    await workspace.destroy();
    const elapsed = await timedAsync(`deploy ${vms} VM(s) until all are ready`, async () => {
      const run = await workspace.deploy();
      if (run.status !== 0) throw new Error(`deploy of ${vms} VMs failed; see ${workspace.dir}/cdktf.log`);
    });
    return { workspace, elapsed };
  };
  try {
    const one = await deployTimed("btwbench1", 1);
    oneVmDeployMs = one.elapsed;
    await one.workspace.destroy();
    const three = await deployTimed("btwbench3", 3);
    addRow("deploy to all ready: 3 VMs vs 1 VM", three.elapsed, one.elapsed);
    const pool = "/var/lib/libvirt/btw-img/btwbench3";
    const allocated = (file: string) => fs.statSync(path.join(pool, file)).blocks * 512;
    const base = fs.readdirSync(pool).find((f) => f.includes("-base-")) as string;
    const overlays = fs.readdirSync(pool).filter((f) => /-vm\d+\.qcow2$/.test(f));
    const perVm = overlays.reduce((sum, f) => sum + allocated(f), 0) / overlays.length;
    addRow("disk per extra VM right after ready: overlay vs full image copy", perVm, allocated(base), mib);
    const redeploy = await timedAsync("no-change redeploy", () => three.workspace.deploy());
    const diff = await timedAsync("cdktf diff lab", () => three.workspace.cdktf(["diff", "lab", "--skip-provider-lock"]));
    addRow("no-change redeploy vs cdktf diff lab", redeploy, diff);
    await three.workspace.destroy();
  } finally {
    forceCleanup("btw-btwbench");
    forceCleanup("btwbench");
    await server.close();
  }
}

function printTable(): void {
  const header: Row = { measure: "measure", ours: "btw-img", baseline: "baseline", ratio: "ratio" };
  const all = [header, ...rows];
  const width = (key: keyof Row) => Math.max(...all.map((r) => r[key].length));
  const line = (r: Row) => `| ${r.measure.padEnd(width("measure"))} | ${r.ours.padStart(width("ours"))} | ${r.baseline.padStart(width("baseline"))} | ${r.ratio.padStart(width("ratio"))} |`;
  console.log(line(header));
  console.log(`|${"-".repeat(width("measure") + 2)}|${"-".repeat(width("ours") + 2)}|${"-".repeat(width("baseline") + 2)}|${"-".repeat(width("ratio") + 2)}|`);
  for (const row of rows) console.log(line(row));
  console.log("\nratio = btw-img / baseline, measured in this run on the same input (lower is better).");
}

async function main(): Promise<void> {
  const sections = process.argv.slice(2);
  if (sections.includes("--help") || sections.includes("-h")) {
    console.log("usage: npm run bench [-- image|baremetal|lab ...]   (default: all sections)");
    return;
  }
  if (sections.length === 0 || sections.includes("image")) await benchImage();
  if (sections.length === 0 || sections.includes("lab")) await benchLab();
  if (sections.length === 0 || sections.includes("baremetal")) await benchBaremetal();
  printTable();
}

main().catch((error) => {
  if (rows.length > 0) printTable();
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
