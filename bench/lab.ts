// npm run bench -- lab, seed: a lab VM's deploy to ready, and a VM's cloud-init seed.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { customizedTestImage } from "../testkit/baremetal";
import { LabWorkspace } from "../testkit/cdktf-cli";
import { fixtureImage } from "../testkit/fixture-image";
import { hold } from "../testkit/held";
import { serveDirectory } from "../testkit/http-server";
import { testLab } from "../testkit/lab-yaml";
import { bootBreakdown } from "../testkit/libvirt";
import { Firmware } from "../testkit/pxe-lab";
import { runMeasured, seedVm } from "../testkit/seed";
import { domainName } from "../lib/config/names";
import { addRow, mib, oneVmDeployMs, seconds, succeeded, timedAsync } from "./table";

/** A lab of `vms` VMs (names vm1...) with the given firmware, on the fixture image served at baseUrl. */
export function benchLabConfig(name: string, vms: number, firmware: Firmware, baseUrl: string): Record<string, unknown> {
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
export async function deployTimed(config: Record<string, unknown>): Promise<{ workspace: LabWorkspace; elapsed: number }> {
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
export async function oneLabVmDeployMs(firmware: Firmware, baseUrl: string): Promise<number> {
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
export const BENCH_LABS = { libvirtPrefixes: ["btw-btwbench", "btwbench"] };

/** The baselines of the blank machines: for each firmware, a one-VM lab of that firmware. */
export async function labVmBaselines(firmwares: Firmware[]): Promise<void> {
  const server = await serveDirectory(fixtureImage("trixie").dir);
  const release = hold("bench-lab", BENCH_LABS);
  try {
    for (const firmware of firmwares) await oneLabVmDeployMs(firmware, server.baseUrl);
  } finally {
    release();
    await server.close();
  }
}

export async function benchLab(): Promise<void> {
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
export async function benchSeed(): Promise<void> {
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
