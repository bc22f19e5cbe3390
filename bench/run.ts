// npm run bench: measures btw-img against baselines run in the same process on
// the same input, and prints a table of ratios. Never part of the tests.
//
//   npm run bench                 all sections
//   npm run bench -- image        acquire + customize only
//   npm run bench -- acquire      acquire only
//   npm run bench -- baremetal    partition capture and blank machines over PXE only (the BIOS one also through its BMC)
//   npm run bench -- lab          lab deploy only
//   npm run bench -- seed         a VM's cloud-init seed (the first and a second VM of one image) only
//   npm run bench -- layouts      restore time of raid1 and zfs-mirror (two disks each) next to single, same image
//   npm run bench -- scale        one server, 1 to 16 receivers in network namespaces: unicast HTTP and multicast
//                                 (scale:1,2,4 for other receiver counts)
//
// Whatever it holds outside its temporary folders (libvirt objects, the PXE
// server) is recorded (testkit/held.ts): an interrupted run releases it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../lib/paths";
import { benchScale } from "./scale";
import { finishHeldRecords, startHeldRecords } from "../testkit/held";
import { Firmware } from "../testkit/pxe-lab";
import { addRow, printTable, rows } from "./table";
import { benchImage } from "./image";
import { benchLab, benchSeed } from "./lab";
import { benchBaremetal, benchLayouts } from "./baremetal";

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
    console.log("  baremetal:uefi,uefi-secure  only the blank machines of these firmwares (bios, uefi, uefi-secure; bios: also through its BMC)");
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
  const requirements = path.join(PROJECT_DIR, "scripts", "host", "bench-requirements.txt");
  const check = spawnSync("sh", [path.join(PROJECT_DIR, "scripts", "host", "check-requirements.sh"), "--requirements", requirements], { encoding: "utf8" });
  if (check.status !== 0) {
    throw new Error(`the scale section needs what ${path.relative(PROJECT_DIR, requirements)} lists (install the packages it names; they enable system services on port 80):\n${check.stderr.trim()}`);
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
