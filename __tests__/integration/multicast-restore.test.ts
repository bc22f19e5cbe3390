// The restore's multicast transport without any VM: the PXE server's multicast
// senders (scripts/steps/pxe/multicast-sender.sh, real udpcast) and busybox httpd in
// one network namespace, two machines' restore.sh --fetch-only (under busybox, as in
// the deploy environment) in two others, joined by a bridge (testkit/fan-out.ts).
// One session serves both: the server sends each artifact about once, not once per
// machine; a lossy link still gives files that match their sha256; a machine that
// finds no session fetches over HTTP.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { FanOutNet } from "../../testkit/fan-out";
import { layoutTableArgs } from "../../testkit/baremetal";
import { holdStarted } from "../../testkit/held";
import { busyboxPath, scriptPath, workDir } from "../helpers/metal-scripts";

const work = workDir();
const MiB = 2 ** 20;
// In the server's own namespace: no other test meets them.
const HTTP_PORT = 18471;
const PORT_BASE = 19400;

interface Fetch {
  status: number | null;
  output: string;
}

describe("artifacts by multicast: one session for every machine, checked, HTTP when there is none", () => {
  const net = new FanOutNet(2);
  const served = path.join(work, "served");
  const daemons: ChildProcess[] = [];
  const files: Record<string, Buffer> = {
    "partition-table.sfdisk": Buffer.from("label: gpt\n"),
    "boot-code.bin": crypto.randomBytes(440),
    "p1.ext4.pcl.zst": crypto.randomBytes(24 * MiB),
    "p15.vfat.pcl.zst": crypto.randomBytes(4 * MiB),
  };
  const sha = (data: Buffer) => crypto.createHash("sha256").update(data).digest("hex");
  const url = (file: string) => `http://${net.serverAddress}:${HTTP_PORT}/${file}`;
  const pathDir = busyboxPath(path.join(work, "bin"), ["jq", "zstd", "udp-receiver"]);
  let release = () => {};
  // Written once: two machines start at the same moment.
  const layouts = layoutTableArgs(work);

  const daemon = (command: string[]) => {
    const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    daemons.push(child);
    return child;
  };
  const stopDaemons = async () => {
    for (const child of daemons.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((resolve) => child.once("close", resolve));
      }
    }
  };
  /** restore.sh --fetch-only on machine INDEX, in its namespace, with busybox's PATH. */
  const fetchOn = (index: number, table: string, wait: number): Promise<Fetch> => {
    const dir = path.join(work, `machine-${index}-${table}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const args = ["--fetch-only", ...layouts, "--manifest", url("manifest.json"), "--multicast", url(table), "--multicast-interface", "r0", "--multicast-wait", String(wait), "--work-dir", dir];
    const child = spawn("ip", ["netns", "exec", net.receiverNs(index), "env", `PATH=${pathDir}`, "sh", scriptPath("restore.sh"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (data) => (output += data));
    child.stderr.on("data", (data) => (output += data));
    return new Promise((resolve) => child.on("close", (status) => resolve({ status, output })));
  };
  const received = (index: number, table: string) => Object.fromEntries(Object.keys(files).map((file) => [file, sha(fs.readFileSync(path.join(work, `machine-${index}-${table}`, file)))]));
  const expected = Object.fromEntries(Object.entries(files).map(([file, data]) => [file, sha(data)]));
  const partitionBytes = files["p1.ext4.pcl.zst"].length + files["p15.vfat.pcl.zst"].length;

  beforeAll(async () => {
    fs.mkdirSync(served);
    for (const [file, data] of Object.entries(files)) fs.writeFileSync(path.join(served, file), data);
    const manifest = {
      format_version: 1,
      disk: { min_size_bytes: 100 * MiB },
      partition_table: { file: "partition-table.sfdisk", sha256: expected["partition-table.sfdisk"], size: files["partition-table.sfdisk"].length },
      boot_code: { file: "boot-code.bin", sha256: expected["boot-code.bin"], size: 440 },
      partitions: [
        { number: 1, role: "root", tool: "partclone.ext4", artifact: "p1.ext4.pcl.zst", sha256: expected["p1.ext4.pcl.zst"], size: files["p1.ext4.pcl.zst"].length },
        { number: 15, role: "esp", tool: "partclone.vfat", artifact: "p15.vfat.pcl.zst", sha256: expected["p15.vfat.pcl.zst"], size: files["p15.vfat.pcl.zst"].length },
      ],
    };
    fs.writeFileSync(path.join(served, "manifest.json"), JSON.stringify(manifest));
    // The table the PXE server writes (scripts/steps/pxe/multicast.sh), and one naming a session nobody sends.
    fs.writeFileSync(path.join(served, "multicast.tab"), `p1.ext4.pcl.zst ${PORT_BASE}\np15.vfat.pcl.zst ${PORT_BASE + 2}\n`);
    fs.writeFileSync(path.join(served, "silent.tab"), `p1.ext4.pcl.zst ${PORT_BASE + 10}\n`);
    net.create();
    // Its names carry this process's pid: new, nothing to release first.
    release = holdStarted("multicast-restore", { netns: net.namespaces });
    // The server's uplink: egress, not this host's memory copies, bounds a transfer.
    net.limitServer("1gbit");
    daemon(net.inNs(net.serverNs, ["busybox", "httpd", "-f", "-p", `${net.serverAddress}:${HTTP_PORT}`, "-h", served]));
    ["p1.ext4.pcl.zst", "p15.vfat.pcl.zst"].forEach((file, i) =>
      daemon(net.inNs(net.serverNs, ["sh", scriptPath("pxe/multicast-sender.sh"), path.join(served, file), String(PORT_BASE + 2 * i), "s0", "2", "30"])),
    );
  }, 120_000);

  afterAll(async () => {
    await stopDaemons();
    net.release();
    release();
  });

  test("two machines receive every partition artifact in one session each: the server sends it about once", async () => {
    const before = net.serverTxBytes();
    const fetches = await Promise.all([1, 2].map((index) => fetchOn(index, "multicast.tab", 120)));
    const egress = net.serverTxBytes() - before;
    for (const fetch of fetches) {
      expect({ status: fetch.status, tail: fetch.status === 0 ? "" : fetch.output.slice(-2000) }).toEqual({ status: 0, tail: "" });
      expect(fetch.output).toContain("received p1.ext4.pcl.zst from its multicast session");
      expect(fetch.output).toContain("received p15.vfat.pcl.zst from its multicast session");
      expect(fetch.output).not.toContain("downloading p1.ext4.pcl.zst");
      expect(fetch.output).toContain("all 4 artifacts match their sha256");
    }
    for (const index of [1, 2]) expect(received(index, "multicast.tab")).toEqual(expected);
    // Unicast would have sent the partitions twice; one session sends them once, with its
    // headers and what it sends again (the uplink's queue drops a burst): well under twice.
    expect(egress).toBeGreaterThan(partitionBytes);
    expect(egress).toBeLessThan(1.5 * partitionBytes);
  }, 300_000);

  test("with 1 % of the packets lost at each machine, the sessions resend what was lost: every file matches", async () => {
    net.receiverLoss(0.01);
    try {
      const fetches = await Promise.all([1, 2].map((index) => fetchOn(index, "multicast.tab", 120)));
      for (const fetch of fetches) {
        expect({ status: fetch.status, tail: fetch.status === 0 ? "" : fetch.output.slice(-2000) }).toEqual({ status: 0, tail: "" });
        expect(fetch.output).toContain("received p1.ext4.pcl.zst from its multicast session");
      }
      for (const index of [1, 2]) expect(received(index, "multicast.tab")).toEqual(expected);
    } finally {
      net.receiverLoss(0);
    }
  }, 300_000);

  test("a machine that finds no session within its wait fetches the artifact over HTTP, and it matches", async () => {
    const fetch = await fetchOn(1, "silent.tab", 5);
    expect({ status: fetch.status, tail: fetch.status === 0 ? "" : fetch.output.slice(-2000) }).toEqual({ status: 0, tail: "" });
    expect(fetch.output).toMatch(/no multicast session of p1\.ext4\.pcl\.zst joined \(.*\): fetching it over HTTP/);
    expect(fetch.output).toContain("downloading p1.ext4.pcl.zst");
    expect(received(1, "silent.tab")).toEqual(expected);
  }, 120_000);
});
