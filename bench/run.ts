// npm run bench: measures btw-img against baselines run in the same process on
// the same input, and prints a table of ratios. Never part of the tests.
//
//   npm run bench                 all sections
//   npm run bench -- image        acquire + customize only
//   npm run bench -- acquire      acquire only
//   npm run bench -- baremetal    partition capture and blank machines over PXE only
//   npm run bench -- lab          lab deploy only
//   npm run bench -- seed         a VM's cloud-init seed (the first and a second VM of one image) only
//   npm run bench -- layouts      restore time of raid1 and zfs-mirror (two disks each) next to single, same image
//   npm run bench -- scale        one server, 1 to 16 receivers in network namespaces: unicast HTTP and multicast
//                                 (scale:1,2,4 for other receiver counts)
//
// Whatever it holds outside its temporary folders (libvirt objects, the PXE
// server) is recorded (testkit/held.ts): an interrupted run releases it.
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../lib/config/config";
import { customizeArgs } from "../lib/constructs/customized-image";
import { scriptCommand, SCRIPTS_DIR } from "../lib/constructs/host-step";
import { readProfile } from "../lib/config/profile";
import { customizedTestImage } from "../testkit/baremetal";
import { CliRun, LabWorkspace } from "../testkit/cdktf-cli";
import { FixtureImage, fixtureImage } from "../testkit/fixture-image";
import { benchScale } from "./scale";
import { finishHeldRecords, hold, startHeldRecords } from "../testkit/held";
import { serveDirectory } from "../testkit/http-server";
import { testLab } from "../testkit/lab-yaml";
import { bootBreakdown } from "../testkit/libvirt";
import { BootTiming, Firmware, PxeLab, PxeMachine } from "../testkit/pxe-lab";
import { runMeasured, seedVm } from "../testkit/seed";
import { domainName } from "../lib/config/names";

interface Row {
  measure: string;
  ours: string;
  baseline: string;
  ratio: string;
}

const rows: Row[] = [];
// Set by the lab section, per firmware: the baseline for a bare-metal machine's first boot.
const oneVmDeployMs = new Map<Firmware, number>();
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

/** A cdktf run's result when it succeeded; a failed one throws naming the step, so no failure is timed as a success. */
async function succeeded(step: string, run: Promise<CliRun>): Promise<CliRun> {
  const result = await run;
  if (result.status !== 0) throw new Error(`${step} failed (exit ${result.status}):\n${result.output.slice(-3000)}`);
  return result;
}

function addRow(measure: string, ours: number, baseline: number, format = seconds): void {
  rows.push({ measure, ours: format(ours), baseline: format(baseline), ratio: baseline > 0 ? (ours / baseline).toFixed(2) : "n/a" });
}

/** Bytes a folder takes on disk (holes not counted). */
function diskBytes(dir: string): number {
  return Number(execFileSync("du", ["-s", "-B1", dir], { encoding: "utf8" }).split("\t")[0]);
}

/**
 * Acquire rows: the by-hand baseline, then prepare-cloud-img.sh's one pass, on the
 * same archive served on loopback (read once first, so neither pays for the disk);
 * returns the link to the acquired base (a raw disk).
 */
function benchAcquire(fixture: FixtureImage, baseUrl: string, work: string): string {
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

async function benchImage(acquireOnly = false): Promise<void> {
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
function publishedSizes(minimal: string, base: string, debianArchive: string, work: string): void {
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

async function benchBaremetal(firmwares: Firmware[]): Promise<void> {
  const image = await customizedTestImage("minimal");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-bm-"));
  try {
    const artifacts = path.join(work, "artifacts");
    const capture = timed("capture-partitions.sh", () => sh(`sh ${SCRIPTS_DIR}/capture-partitions.sh --image ${image} --output-dir ${artifacts} --profile minimal`));
    const raw = path.join(work, "disk.raw");
    execFileSync("qemu-img", ["convert", "-O", "raw", image, raw]);
    const dd = timed("dd of the whole disk (with zstd, like the artifacts)", () => sh(`dd if=${raw} bs=4M status=none | zstd -q -T0 -o ${work}/disk.raw.zst`));
    addRow("capture: partclone artifacts vs dd of the whole disk", capture, dd);
    const manifest = JSON.parse(fs.readFileSync(path.join(artifacts, "manifest.json"), "utf8"));
    const artifactBytes = manifest.partitions.reduce((sum: number, p: { artifact_size: number }) => sum + p.artifact_size, 0);
    const partitionBytes = manifest.partitions.reduce((sum: number, p: { size_bytes: number }) => sum + p.size_bytes, 0);
    const rootUsed = Number(
      execFileSync(
        "sh",
        [
          "-c",
          `. ${SCRIPTS_DIR}/lib/image-mount.sh; l=$(attach_loop ${raw} ro); r=$(root_partition $l); dumpe2fs -h $r 2>/dev/null | awk -F: '/^Block count/{c=$2} /^Free blocks/{f=$2} /^Block size/{b=$2} END{print (c-f)*b}'; losetup -d $l`,
        ],
        { encoding: "utf8" },
      ).trim(),
    );
    addRow("artifact bytes vs used bytes (root file system)", artifactBytes, rootUsed, mib);
    addRow("artifact bytes vs raw partition sizes", artifactBytes, partitionBytes, mib);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  let timings: Record<string, BootTiming & { firmware: Firmware }>;
  try {
    timings = await blankMachineTimings(firmwares);
  } catch (error) {
    process.stderr.write(`bench: blank machines: ${(error as Error).message}\n`);
    rows.push({ measure: "blank machine: power-on to cloud-init done", ours: "failed", baseline: "", ratio: "n/a" });
    return;
  }
  for (const [kind, { restoreMs, firstBootMs, firmware }] of Object.entries(timings)) {
    const total = restoreMs + firstBootMs;
    addRow(`blank ${kind} machine power-on to cloud-init done vs ${firmware} lab VM deploy to ready`, total, oneVmDeployMs.get(firmware)!);
    addRow(`blank ${kind} machine: PXE restore vs reboot to cloud-init done`, restoreMs, firstBootMs);
  }
}

/**
 * Runs `measure` on a deployed bare-metal lab: the PXE server of `lab` on its own network
 * (labConfig as given), held while it runs, destroyed and removed after, whatever happened.
 */
async function withDeployedPxeLab<T>(lab: PxeLab, holder: string, config: Parameters<PxeLab["labConfig"]>[0], measure: (workspace: LabWorkspace) => Promise<T>): Promise<T> {
  const workspace = new LabWorkspace();
  const release = hold(holder, lab.held());
  try {
    fs.writeFileSync(workspace.configFile, stringify(lab.labConfig(config)));
    lab.createNetwork(workspace.dir);
    process.stderr.write(`bench: cdktf deploy baremetal (${lab.machines.map((m) => `${m.name}: ${m.profile}`).join(", ")}) ...\n`);
    const deploy = await workspace.cdktf(["deploy", "baremetal", "--auto-approve", "--skip-provider-lock"], 2_400_000);
    if (deploy.status !== 0) throw new Error(`cdktf deploy baremetal failed:\n${deploy.output.slice(-3000)}`);
    return await measure(workspace);
  } finally {
    lab.stopMachines();
    await workspace.cdktf(["destroy", "baremetal", "--auto-approve", "--skip-provider-lock"], 600_000);
    lab.cleanup();
    release();
    workspace.remove();
  }
}

/**
 * As __tests__/e2e/baremetal-pxe.test.ts, timed: `cdktf deploy baremetal`, then blank
 * machines (UEFI minimal with and without Secure Boot, BIOS metal; network first, then
 * disk) restore over PXE and reboot to cloud-init done, one after the other, so each
 * has the host to itself like the lab section's single VM. Its own names and addresses,
 * so it never touches what a test run holds.
 */
async function blankMachineTimings(firmwares: Firmware[]): Promise<Record<string, BootTiming & { firmware: Firmware }>> {
  const machines: PxeMachine[] = [
    // As PCs: the firmware's own PXE, without QEMU's iPXE option ROM, which would run first and hand back.
    { name: "bench-uefi", mac: "52:54:00:bd:55:01", firmware: "uefi", profile: "minimal", diskSerial: "btw-uefi-disk", optionRom: false },
    // Debian's Secure Boot OVMF offered no network boot without the ROM (its iPXE driver is the NIC's driver there).
    { name: "bench-uefi-sb", mac: "52:54:00:bd:55:03", firmware: "uefi-secure", profile: "minimal" },
    { name: "bench-bios", mac: "52:54:00:bd:55:02", firmware: "bios", profile: "metal", wipe: true },
  ];
  const lab = new PxeLab({
    lab: "bmbench",
    subnet: "10.213.55",
    stateDir: "/var/lib/btw-img/pxe-bench",
    machines: machines.filter((machine) => firmwares.includes(machine.firmware)),
  });
  return withDeployedPxeLab(lab, "bench-pxe", { labCidr: "10.213.56.0/24", httpPort: 18183, dhcpRange: "10.213.55.100,10.213.55.150" }, async (workspace) => {
    const timings: Record<string, BootTiming & { firmware: Firmware }> = {};
    for (const machine of lab.machines) {
      process.stderr.write(`bench: blank machine ${machine.name}: power-on to cloud-init done ...\n`);
      const started = lab.startMachines(workspace.dir, [machine]);
      const reports = await lab.waitForReports(900_000, [machine]);
      const notDone = lab.notDone(reports, [machine]);
      if (notDone.length > 0) throw new Error(notDone.map((m) => `${m.machine} reported ${m.report}\n${m.console}`).join("\n"));
      const statuses = await lab.waitForAll("cloud-init to finish in the restored system", 1_500_000, (m) => lab.cloudInitStatus(m), [machine]);
      if (!statuses.get(machine)!.value.includes("status: done")) throw new Error(`cloud-init in ${machine.name}:\n${statuses.get(machine)!.value}`);
      for (const line of bootBreakdown(lab.domain(machine))) process.stderr.write(`bench: ${machine.name} first boot: ${line}\n`);
      lab.stopMachines([machine]);
      // Where the restore's time went: the firmware and boot loader before the first line, then each step.
      for (const line of lab.deployProgress(machine)) process.stderr.write(`bench: ${machine.name}: ${line}\n`);
      for (const [kind, t] of Object.entries(lab.bootTimings(started, reports, statuses, [machine]))) {
        process.stderr.write(`bench: ${kind}: PXE restore ${seconds(t.restoreMs)}; reboot to cloud-init done ${seconds(t.firstBootMs)}\n`);
        timings[kind] = { ...t, firmware: machine.firmware };
      }
      // Its baseline right after it, so both see the same host (unless the lab section measured it).
      await labVmBaselines([machine.firmware]);
    }
    return timings;
  });
}

/**
 * Restore time by disk layout (docs/layouts.md), one image, one run: blank BIOS machines
 * restored as single onto one disk, as raid1 onto two and as zfs-mirror onto two, one after
 * the other. The image is a bench profile extending both zfs and mdadm, so every layout
 * restores the same captured partitions. Power-on to the restore's report, and the restore
 * script's own time (its "restored ... in Ns" line). Its own names and addresses, as
 * blankMachineTimings.
 */
async function benchLayouts(): Promise<void> {
  const profilesDir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-profiles-"));
  fs.cpSync(path.join(PROJECT_DIR, "profiles"), profilesDir, { recursive: true });
  fs.mkdirSync(path.join(profilesDir, "bench-layouts"));
  fs.writeFileSync(path.join(profilesDir, "bench-layouts", "extends"), "zfs mdadm\n");
  const profile = "bench-layouts";
  const lab = new PxeLab({
    lab: "bmlayout",
    subnet: "10.213.57",
    stateDir: "/var/lib/btw-img/pxe-bench-layout",
    machines: [
      { name: "bench-single", mac: "52:54:00:bd:57:01", firmware: "bios", profile },
      { name: "bench-raid1", mac: "52:54:00:bd:57:02", firmware: "bios", profile, layout: "raid1", disks: 2 },
      { name: "bench-zfs-mirror", mac: "52:54:00:bd:57:03", firmware: "bios", profile, layout: "zfs-mirror", disks: 2 },
    ],
  });
  try {
    await withDeployedPxeLab(lab, "bench-layouts", { labCidr: "10.213.58.0/24", httpPort: 18185, dhcpRange: "10.213.57.100,10.213.57.150", profilesDir }, async (workspace) => {
      const restore = new Map<string, { powerOnMs: number; scriptMs: number }>();
      for (const machine of lab.machines) {
        process.stderr.write(`bench: blank machine ${machine.name}: power-on to the restore's report ...\n`);
        const started = lab.startMachines(workspace.dir, [machine]);
        const reports = await lab.waitForReports(1_800_000, [machine]);
        const notDone = lab.notDone(reports, [machine]);
        if (notDone.length > 0) throw new Error(notDone.map((m) => `${m.machine} reported ${m.report}\n${m.console}`).join("\n"));
        lab.stopMachines([machine]);
        const progress = lab.deployProgress(machine);
        for (const line of progress) process.stderr.write(`bench: ${machine.name}: ${line}\n`);
        const scriptSeconds = progress.map((line) => /^restore: restored .* in (\d+)s/.exec(line)?.[1]).find(Boolean);
        if (!scriptSeconds) throw new Error(`no "restored ... in Ns" line on ${machine.name}'s console`);
        restore.set(machine.layout ?? "single", { powerOnMs: reports.get(machine)!.at - started, scriptMs: Number(scriptSeconds) * 1000 });
      }
      const single = restore.get("single")!;
      for (const layout of ["raid1", "zfs-mirror"]) {
        const timing = restore.get(layout)!;
        addRow(`restore ${layout} (2 disks) vs single, power-on to report (BIOS, one image: zfs + mdadm)`, timing.powerOnMs, single.powerOnMs);
        addRow(`restore ${layout} (2 disks) vs single, the restore script alone`, timing.scriptMs, single.scriptMs);
      }
    });
  } finally {
    fs.rmSync(profilesDir, { recursive: true, force: true });
  }
}

/** A lab of `vms` VMs (names vm1...) with the given firmware, on the fixture image served at baseUrl. */
function benchLabConfig(name: string, vms: number, firmware: Firmware, baseUrl: string): Record<string, unknown> {
  return testLab({
    name,
    imageBaseUrl: baseUrl,
    vms: Array.from({ length: vms }, (_, i) => ({ name: `vm${i + 1}` })),
    extra: {
      libvirt: { accel: "tcg", firmware },
      network: { name: `${name}-net`, mode: "isolated", cidr: "10.213.41.0/24" },
      readiness: { timeout: 1800 },
    },
  });
}

/** Deploys the lab until all VMs are ready, timed; its image is built (and the lab destroyed) first, so the timing is the lab itself. */
async function deployTimed(config: Record<string, unknown>): Promise<{ workspace: LabWorkspace; elapsed: number }> {
  const workspace = new LabWorkspace();
  fs.writeFileSync(workspace.configFile, stringify(config));
  const libvirt = config.libvirt as { firmware: Firmware };
  const vms = (config.vms as unknown[]).length;
  await succeeded(`warm-up deploy of ${vms} ${libvirt.firmware} VM(s) (builds the image)`, workspace.deploy());
  await succeeded(`destroy after the warm-up deploy of ${vms} VM(s)`, workspace.destroy());
  const elapsed = await timedAsync(`deploy ${vms} ${libvirt.firmware} VM(s) until all are ready`, () =>
    succeeded(`deploy of ${vms} ${libvirt.firmware} VM(s) (see ${workspace.dir}/cdktf.log)`, workspace.deploy()),
  );
  return { workspace, elapsed };
}

/** A one-VM lab's deploy to ready with this firmware, measured once per run (the baseline of blank machines too). */
async function oneLabVmDeployMs(firmware: Firmware, baseUrl: string): Promise<number> {
  const known = oneVmDeployMs.get(firmware);
  if (known !== undefined) return known;
  const name = `btwbench1${firmware === "bios" ? "" : firmware === "uefi" ? "u" : "s"}`;
  const one = await deployTimed(benchLabConfig(name, 1, firmware, baseUrl));
  for (const line of bootBreakdown(domainName(name, "vm1"))) process.stderr.write(`bench: ${firmware} lab VM boot: ${line}\n`);
  await one.workspace.destroy();
  one.workspace.remove();
  oneVmDeployMs.set(firmware, one.elapsed);
  return one.elapsed;
}

// The labs' domains, volumes, pools and networks (btw-btwbench1-..., btwbench1-net, ...).
const BENCH_LABS = { libvirtPrefixes: ["btw-btwbench", "btwbench"] };

/** The baselines of the blank machines: for each firmware, a one-VM lab of that firmware. */
async function labVmBaselines(firmwares: Firmware[]): Promise<void> {
  const server = await serveDirectory(fixtureImage("trixie").dir);
  const release = hold("bench-lab", BENCH_LABS);
  try {
    for (const firmware of firmwares) await oneLabVmDeployMs(firmware, server.baseUrl);
  } finally {
    release();
    await server.close();
  }
}

async function benchLab(): Promise<void> {
  const server = await serveDirectory(fixtureImage("trixie").dir);
  const release = hold("bench-lab", BENCH_LABS);
  try {
    const one = await oneLabVmDeployMs("bios", server.baseUrl);
    const three = await deployTimed(benchLabConfig("btwbench3", 3, "bios", server.baseUrl));
    addRow("deploy to all ready: 3 VMs vs 1 VM", three.elapsed, one);
    const pool = "/var/lib/libvirt/btw-img/btwbench3";
    const allocated = (file: string) => fs.statSync(path.join(pool, file)).blocks * 512;
    const base = fs.readdirSync(pool).find((f) => f.includes("-base-")) as string;
    const overlays = fs.readdirSync(pool).filter((f) => /-vm\d+\.qcow2$/.test(f));
    const perVm = overlays.reduce((sum, f) => sum + allocated(f), 0) / overlays.length;
    addRow("disk per extra VM right after ready: overlay vs full image copy", perVm, allocated(base), mib);
    const redeploy = await timedAsync("no-change redeploy", () => succeeded("no-change redeploy", three.workspace.deploy()));
    const diff = await timedAsync("cdktf diff lab", () => succeeded("cdktf diff lab", three.workspace.cdktf(["diff", "lab", "--skip-provider-lock"])));
    addRow("no-change redeploy vs cdktf diff lab", redeploy, diff);
    await three.workspace.destroy();
    three.workspace.remove();
  } finally {
    release();
    await server.close();
  }
}

/**
 * A VM's seed (make-seed-iso.sh, its user-data checked by the image's own cloud-init) for a
 * first and a second VM of the minimal image, against what every seed did before it read
 * the image in place: convert the whole image to a raw file (the baseline is that
 * conversion alone, without the schema check). Time, and bytes written to storage.
 */
async function benchSeed(): Promise<void> {
  const image = await customizedTestImage("minimal");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-seed-"));
  try {
    const seed = async (name: string) => {
      process.stderr.write(`bench: seed of ${name} ...\n`);
      const userData = `#cloud-config\nhostname: ${name}\nusers:\n  - name: admin\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    lock_passwd: true\nruncmd:\n  - echo ${name}\n`;
      const run = await seedVm({ name, output: path.join(work, "seeds", `${name}.iso`), image, userData });
      if (run.status !== 0) throw new Error(`make-seed-iso.sh failed for ${name}:\n${run.output}`);
      process.stderr.write(`bench: seed of ${name}: ${seconds(run.elapsedMs)}, ${mib(run.writtenBytes)} written\n`);
      return run;
    };
    const first = await seed("vm1");
    const second = await seed("vm2");
    process.stderr.write("bench: converting the image to raw (what each seed did before) ...\n");
    const convert = runMeasured(["qemu-img", "convert", "-O", "raw", image, path.join(work, "image.raw")]);
    if (convert.status !== 0) throw new Error("qemu-img convert failed");
    process.stderr.write(`bench: converting the image: ${seconds(convert.elapsedMs)}, ${mib(convert.writtenBytes)} written\n`);
    addRow("seed of a 1st VM: make-seed-iso.sh vs converting the image (the old seed's copy)", first.elapsedMs, convert.elapsedMs);
    addRow("seed of a 2nd VM: make-seed-iso.sh vs converting the image", second.elapsedMs, convert.elapsedMs);
    addRow("bytes written by a 2nd VM's seed vs by converting the image", second.writtenBytes, convert.writtenBytes, mib);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
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

/** The firmwares of "baremetal:uefi,uefi-secure" (all three for "baremetal"). */
function baremetalFirmwares(section: string | undefined): Firmware[] {
  const all: Firmware[] = ["uefi", "uefi-secure", "bios"];
  const asked = section?.split(":")[1]?.split(",").filter(Boolean);
  if (!asked) return all;
  const unknown = asked.filter((firmware) => !all.includes(firmware as Firmware));
  if (unknown.length > 0) throw new Error(`unknown firmware ${unknown.join(", ")} in '${section}' (firmwares: ${all.join(", ")})`);
  return asked as Firmware[];
}

async function main(): Promise<void> {
  const sections = process.argv.slice(2);
  if (sections.includes("--help") || sections.includes("-h")) {
    console.log("usage: npm run bench [-- image|acquire|seed|lab|baremetal[:FIRMWARE,...]|layouts ...]   (default: all sections)");
    console.log("  layouts                     restore time of raid1 and zfs-mirror (two disks each) next to single, same image");
    console.log("  baremetal:uefi,uefi-secure  only the blank machines of these firmwares (bios, uefi, uefi-secure)");
    console.log("  scale[:1,2,4,8,16]          one server, K receivers (network namespaces): HTTP servers and udpcast multicast");
    return;
  }
  const lock = benchLock();
  startHeldRecords("bench");
  try {
    if (sections.length === 0 || sections.includes("image")) await benchImage();
    else if (sections.includes("acquire")) await benchImage(true);
    if (sections.length === 0 || sections.includes("seed")) await benchSeed();
    if (sections.length === 0 || sections.includes("lab")) await benchLab();
    const baremetal = sections.find((section) => section === "baremetal" || section.startsWith("baremetal:"));
    if (sections.length === 0 || baremetal) await benchBaremetal(baremetalFirmwares(baremetal));
    if (sections.length === 0 || sections.includes("layouts")) await benchLayouts();
    const scale = sections.find((section) => section === "scale" || section.startsWith("scale:"));
    if (sections.length === 0 || scale) await benchScaleSection(scale);
  } finally {
    finishHeldRecords("bench");
    fs.rmSync(lock, { force: true });
  }
  printTable();
}

/**
 * One bench at a time on a host: two would use the same machine, lab and server names (and
 * the end of one would remove what the other is timing). The pid file of the running one.
 */
function benchLock(): string {
  const lock = path.join(os.tmpdir(), "btw-img-bench.pid");
  const running = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (;;) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      return lock;
    } catch {
      const pid = Number(fs.existsSync(lock) ? fs.readFileSync(lock, "utf8").trim() : "");
      if (pid > 0 && running(pid)) throw new Error(`another bench (pid ${pid}) is running on this host: wait for it, or stop it (it releases what it holds)`);
      // Left by a bench that was killed: taken over.
      fs.rmSync(lock, { force: true });
    }
  }
}

/** The scale rows (bench/scale.ts), for the receiver counts of "scale:1,2,4" (default 1, 2, 4, 8, 16). */
async function benchScaleSection(section: string | undefined): Promise<void> {
  const counts = section?.includes(":") ? section.split(":")[1].split(",").map(Number) : undefined;
  if (counts && (counts.length === 0 || counts.some((k) => !Number.isInteger(k) || k < 1 || k > 64) || !counts.includes(1))) {
    throw new Error(`'${section}': receiver counts from 1 to 64, 1 among them (the baseline), such as scale:1,2,4`);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-bench-scale-"));
  try {
    await benchScale(addRow, work, counts);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  if (rows.length > 0) printTable();
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
