// npm run bench -- baremetal, layouts: partition capture, blank machines over PXE, restore by layout.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../lib/config/config";
import { SCRIPTS_DIR } from "../lib/constructs/host-step";
import { customizedTestImage } from "../testkit/baremetal";
import { BmcDriverName } from "../testkit/bmc-machines";
import { LabWorkspace } from "../testkit/cdktf-cli";
import { bootBreakdown } from "../testkit/libvirt";
import { BootTiming, Firmware, PxeLab, PxeMachine } from "../testkit/pxe-lab";
import { PxeLabUnderTest } from "../testkit/pxe-lab-test";
import { addRow, mib, oneVmDeployMs, rows, seconds, sh, timed } from "./table";
import { labVmBaselines } from "./lab";

/** The kind (as BootTiming's keys) of the BIOS machine its BMC powers. */
const BMC_KIND = "bios metal, through its BMC,";

export async function benchBaremetal(firmwares: Firmware[]): Promise<void> {
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
  const total = (timing: BootTiming) => timing.restoreMs + timing.firstBootMs;
  if (timings[BMC_KIND] && timings["bios metal"]) {
    addRow("blank bios machine powered through its BMC (IPMI, disk first) vs by hand (network first), power-on to cloud-init done", total(timings[BMC_KIND]), total(timings["bios metal"]));
  }
  for (const [kind, { restoreMs, firstBootMs, firmware }] of Object.entries(timings)) {
    addRow(`blank ${kind} machine power-on to cloud-init done vs ${firmware} lab VM deploy to ready`, restoreMs + firstBootMs, oneVmDeployMs.get(firmware)!);
    addRow(`blank ${kind} machine: PXE restore vs reboot to cloud-init done`, restoreMs, firstBootMs);
  }
}

/**
 * Runs `measure` on a deployed bare-metal lab: the PXE server of `lab` on its own network
 * (labConfig as given), held while it runs, destroyed and removed after, whatever happened.
 * Machines in `bmcs` get a BMC (testkit/bmc-machines.ts): the deploy powers them into their
 * install and returns when they are done.
 */
export async function withDeployedPxeLab<T>(
  lab: PxeLab,
  holder: string,
  config: Parameters<PxeLab["labConfig"]>[0],
  measure: (workspace: LabWorkspace) => Promise<T>,
  bmcs = new Map<PxeMachine, BmcDriverName>(),
): Promise<T> {
  const underTest = new PxeLabUnderTest(lab, holder);
  try {
    await underTest.start(bmcs);
    const machines = underTest.bmcs;
    fs.writeFileSync(underTest.workspace.configFile, stringify(lab.labConfig({ ...config, bmc: machines && ((machine) => machines.bmcKey(machine)) })));
    process.stderr.write(`bench: cdktf deploy baremetal (${lab.machines.map((m) => `${m.name}: ${m.profile}`).join(", ")}) ...\n`);
    const deploy = await underTest.deploy();
    if (deploy.status !== 0) throw new Error(`cdktf deploy baremetal failed:\n${deploy.output.slice(-3000)}`);
    return await measure(underTest.workspace);
  } finally {
    await underTest.stop();
  }
}

/** When the machine's records first say `state` (ms since the epoch, whole seconds). */
function recordedAt(lab: PxeLab, machine: PxeMachine, state: string): number {
  const log = fs.readFileSync(path.join(lab.recordsDir, `${machine.mac}.log`), "utf8");
  const line = log.split("\n").find((entry) => entry.split(" ")[1] === state);
  if (!line) throw new Error(`${machine.name}: no "${state}" in its records:\n${log}`);
  return Number(line.split(" ")[0]) * 1000;
}

/**
 * As __tests__/e2e/baremetal-pxe.test.ts, timed: `cdktf deploy baremetal`, then blank
 * machines (UEFI minimal with and without Secure Boot, BIOS metal; network first, then
 * disk) restore over PXE and reboot to cloud-init done, one after the other, so each
 * has the host to itself like the lab section's single VM. Its own names and addresses,
 * so it never touches what a test run holds.
 */
export async function blankMachineTimings(firmwares: Firmware[]): Promise<Record<string, BootTiming & { firmware: Firmware }>> {
  const machines: PxeMachine[] = [
    // As PCs: the firmware's own PXE, without QEMU's iPXE option ROM, which would run first and hand back.
    { name: "bench-uefi", mac: "52:54:00:bd:55:01", firmware: "uefi", profile: "minimal", diskSerial: "btw-uefi-disk", optionRom: false },
    // Debian's Secure Boot OVMF offered no network boot without the ROM (its iPXE driver is the NIC's driver there).
    { name: "bench-uefi-sb", mac: "52:54:00:bd:55:03", firmware: "uefi-secure", profile: "minimal" },
    { name: "bench-bios", mac: "52:54:00:bd:55:02", firmware: "bios", profile: "metal", wipe: true },
  ];
  // The BIOS one again, powered only through its BMC (ipmi_sim), disk first: the deploy boots it from the network once.
  const bmcMachine: PxeMachine = { name: "bench-bios-bmc", mac: "52:54:00:bd:55:04", firmware: "bios", profile: "metal", wipe: true };
  const byHand = machines.filter((machine) => firmwares.includes(machine.firmware));
  const lab = new PxeLab({
    lab: "bmbench",
    subnet: "10.213.55",
    stateDir: "/var/lib/btw-img/pxe-bench",
    machines: [...byHand, ...(firmwares.includes("bios") ? [bmcMachine] : [])],
  });
  const bmcs = new Map<PxeMachine, BmcDriverName>(lab.machines.includes(bmcMachine) ? [[bmcMachine, "ipmi"]] : []);
  return withDeployedPxeLab(
    lab,
    "bench-pxe",
    { labCidr: "10.213.56.0/24", httpPort: 18183, dhcpRange: "10.213.55.100,10.213.55.150" },
    async (workspace) => {
      const timings: Record<string, BootTiming & { firmware: Firmware }> = {};
      if (bmcs.has(bmcMachine)) {
        // The deploy powered it on through its BMC and returned at its "done": its first boot is on its way.
        const poweredOn = recordedAt(lab, bmcMachine, "powering-on");
        const done = recordedAt(lab, bmcMachine, "done");
        const statuses = await lab.waitForAll("cloud-init in the machine its BMC powered", 1_500_000, (m) => lab.cloudInitStatus(m), [bmcMachine]);
        if (!statuses.get(bmcMachine)!.value.includes("status: done")) throw new Error(`cloud-init in ${bmcMachine.name}:\n${statuses.get(bmcMachine)!.value}`);
        lab.stopMachines([bmcMachine]);
        timings[BMC_KIND] = { restoreMs: done - poweredOn, firstBootMs: statuses.get(bmcMachine)!.at - done, firmware: "bios" };
        process.stderr.write(`bench: ${BMC_KIND}: PXE restore ${seconds(done - poweredOn)}; reboot to cloud-init done ${seconds(statuses.get(bmcMachine)!.at - done)}\n`);
      }
      for (const machine of byHand) {
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
    },
    bmcs,
  );
}

/**
 * Restore time by disk layout (docs/layouts.md), one image, one run: blank BIOS machines
 * restored as single onto one disk, as raid1 onto two and as zfs-mirror onto two, one after
 * the other. The image is a bench profile extending both zfs and mdadm, so every layout
 * restores the same captured partitions. Power-on to the restore's report, and the restore
 * script's own time (its "restored ... in Ns" line). Its own names and addresses, as
 * blankMachineTimings.
 */
export async function benchLayouts(): Promise<void> {
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
