// npm run bench -- scale: one server, K receivers (testkit/fan-out.ts: network
// namespaces on this host, no VMs), the same payload sent by unicast HTTP (busybox
// httpd, which the PXE server runs, and nginx and lighttpd beside it) and by one
// udpcast multicast session. The server's link is a 1 Gbit/s uplink (tc tbf), so
// its egress, not this host's memory copies, bounds HTTP. Per K: the server's
// egress per payload, the time until every receiver is done, and every
// receiver's sha256 against the payload's; then K at its largest with 1 % of
// packets lost at each receiver.
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { SCRIPTS_DIR } from "../lib/paths";
import { FanOutNet } from "../testkit/fan-out";

export type AddRow = (measure: string, ours: number, baseline: number, format?: (value: number) => string) => void;

const HTTP_PORT = 18090;
const MULTICAST_PORT = 19000;
const UPLINK = "1gbit";

interface Transfer {
  ms: number;
  egressBytes: number;
  /** Receivers whose file did not match the payload. */
  mismatches: number;
}

/** Runs a program to its end; fails with its output when it fails. */
function run(command: string[], label: string, timeoutMs = 600_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (data) => (output += data));
    child.stderr.on("data", (data) => (output += data));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      if (status === 0) resolve();
      else reject(new Error(`${label} failed (${signal ?? `exit ${status}`}): ${output.slice(-1500)}`));
    });
  });
}

function sha256(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** The server's egress and the time until all receivers are done, each receiver's file checked and removed. */
async function measure(net: FanOutNet, outputs: string[], payloadSha: string, transfer: () => Promise<void>): Promise<Transfer> {
  const before = net.serverTxBytes();
  const started = Date.now();
  await transfer();
  const ms = Date.now() - started;
  const egressBytes = net.serverTxBytes() - before;
  let mismatches = 0;
  for (const output of outputs) {
    if (!fs.existsSync(output) || sha256(output) !== payloadSha) mismatches++;
    fs.rmSync(output, { force: true });
  }
  return { ms, egressBytes, mismatches };
}

/**
 * One udpcast session, as a PXE server sends it: its own sender (scripts/steps/pxe/multicast-sender.sh, session after
 * session; the session starts when all K receivers joined, or 30 s after the first) and receivers with the deploy
 * environment's options (deploy-env/lib/multicast.sh). The sender is stopped once every receiver is done.
 */
function multicast(net: FanOutNet, k: number, payload: string, outDir: string, payloadSha: string): Promise<Transfer> {
  const outputs = Array.from({ length: k }, (_, i) => path.join(outDir, `multicast-${i + 1}`));
  const receiverOptions = ["--portbase", String(MULTICAST_PORT), "--mcast-rdv-address", "224.0.0.1", "--nokbd", "--no-progress", "--start-timeout", "60", "--receive-timeout", "30"];
  return measure(net, outputs, payloadSha, async () => {
    const receivers = outputs.map((output, i) => run(net.inNs(net.receiverNs(i + 1), ["udp-receiver", "--file", output, "--interface", "r0", ...receiverOptions]), `udp-receiver ${i + 1}`));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const senderCommand = net.inNs(net.serverNs, ["sh", path.join(SCRIPTS_DIR, "pxe", "multicast-sender.sh"), payload, String(MULTICAST_PORT), "s0", String(k), "30"]);
    const sender = spawn(senderCommand[0], senderCommand.slice(1), { stdio: "ignore" });
    const senderEnded = new Promise((resolve) => sender.on("close", resolve));
    try {
      await Promise.all(receivers);
    } finally {
      sender.kill("SIGTERM");
      await senderEnded;
    }
  });
}

/** The HTTP servers compared: each serving DIR on the server's address. */
const HTTP_SERVERS: Record<string, { program: string; start: (dir: string, work: string, address: string) => string[] }> = {
  "busybox httpd": { program: "busybox", start: (dir, _work, address) => ["busybox", "httpd", "-f", "-p", `${address}:${HTTP_PORT}`, "-h", dir] },
  nginx: {
    program: "nginx",
    start: (dir, work, address) => {
      const conf = path.join(work, "nginx.conf");
      fs.writeFileSync(
        conf,
        `daemon off; user root; worker_processes 2; pid ${work}/nginx.pid; error_log ${work}/nginx-error.log;\n` +
          `events { worker_connections 256; }\n` +
          `http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${work}/nginx-body; proxy_temp_path ${work}/nginx-proxy;\n` +
          `  fastcgi_temp_path ${work}/nginx-fastcgi; uwsgi_temp_path ${work}/nginx-uwsgi; scgi_temp_path ${work}/nginx-scgi;\n` +
          `  server { listen ${address}:${HTTP_PORT}; root ${dir}; } }\n`,
      );
      return ["nginx", "-e", `${work}/nginx-error.log`, "-c", conf];
    },
  },
  lighttpd: {
    program: "lighttpd",
    start: (dir, work, address) => {
      const conf = path.join(work, "lighttpd.conf");
      fs.writeFileSync(
        conf,
        `server.document-root = "${dir}"\nserver.bind = "${address}"\nserver.port = ${HTTP_PORT}\nserver.errorlog = "${work}/lighttpd-error.log"\nserver.network-backend = "sendfile"\n`,
      );
      return ["lighttpd", "-D", "-f", conf];
    },
  },
};

function installed(program: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => fs.existsSync(path.join(dir, program))) || fs.existsSync(path.join("/usr/sbin", program));
}

/** K clients fetch the payload at once from one HTTP server. */
async function http(net: FanOutNet, server: string, k: number, payload: string, outDir: string, work: string, payloadSha: string): Promise<Transfer> {
  const served = path.dirname(payload);
  const child = spawn("ip", net.inNs(net.serverNs, HTTP_SERVERS[server].start(served, work, net.serverAddress)).slice(1), { stdio: "ignore" });
  const url = `http://${net.serverAddress}:${HTTP_PORT}/${path.basename(payload)}`;
  try {
    // Until it answers.
    for (let tries = 0; ; tries++) {
      try {
        await run(net.inNs(net.receiverNs(1), ["curl", "-fsS", "-o", "/dev/null", "-r", "0-0", url]), `${server} answering`, 5_000);
        break;
      } catch (error) {
        if (tries >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const outputs = Array.from({ length: k }, (_, i) => path.join(outDir, `http-${i + 1}`));
    return await measure(net, outputs, payloadSha, () =>
      Promise.all(outputs.map((output, i) => run(net.inNs(net.receiverNs(i + 1), ["curl", "-fsS", "-o", output, url]), `curl ${i + 1} from ${server}`))).then(() => undefined),
    );
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.on("close", resolve));
  }
}

/**
 * The scale rows. PAYLOAD_MIB of random bytes (as incompressible as a zstd artifact) is
 * the "image"; receivers write to tmpfs, so neither side waits for a disk.
 */
export async function benchScale(addRow: AddRow, work: string, fanOut: number[] = [1, 2, 4, 8, 16], payloadMiB = 256): Promise<void> {
  for (const program of ["udp-sender", "udp-receiver", "curl", "tc", "iptables"]) {
    if (!installed(program)) throw new Error(`scale: ${program} is not installed (udpcast, curl, iproute2, iptables)`);
  }
  const servers = Object.keys(HTTP_SERVERS).filter((server) => installed(HTTP_SERVERS[server].program));
  const payloadDir = path.join(work, "served");
  fs.mkdirSync(payloadDir, { mode: 0o755 });
  const payload = path.join(payloadDir, "image.bin");
  fs.writeFileSync(payload, crypto.randomBytes(payloadMiB * 2 ** 20));
  const payloadBytes = fs.statSync(payload).size;
  const payloadSha = sha256(payload);
  const outDir = fs.mkdtempSync("/dev/shm/btw-scale-");
  const largest = Math.max(...fanOut);
  const net = new FanOutNet(largest);
  const perImage = (bytes: number) => `${(bytes / payloadBytes).toFixed(2)} images`;
  const count = (value: number) => String(value);
  let mismatches = 0;
  let received = 0;
  const tally = (transfer: Transfer, k: number) => {
    mismatches += transfer.mismatches;
    received += k;
    return transfer;
  };
  try {
    net.create();
    net.limitServer(UPLINK);
    const times = new Map<string, Map<number, Transfer>>();
    for (const k of fanOut) {
      for (const kind of ["multicast", ...servers]) {
        process.stderr.write(`bench: scale: ${kind}, ${k} receiver(s) ...\n`);
        const transfer = tally(kind === "multicast" ? await multicast(net, k, payload, outDir, payloadSha) : await http(net, kind, k, payload, outDir, work, payloadSha), k);
        process.stderr.write(`bench: scale: ${kind}, ${k} receiver(s): ${(transfer.ms / 1000).toFixed(1)} s, ${perImage(transfer.egressBytes)} out\n`);
        if (!times.has(kind)) times.set(kind, new Map());
        times.get(kind)!.set(k, transfer);
      }
    }
    const busybox = times.get("busybox httpd");
    for (const k of fanOut) {
      const cast = times.get("multicast")!.get(k)!;
      addRow(`scale: multicast, ${k} receiver(s): server egress vs one image`, cast.egressBytes, payloadBytes, (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`);
      if (busybox) addRow(`scale: HTTP (busybox httpd), ${k} receiver(s): server egress vs one image`, busybox.get(k)!.egressBytes, payloadBytes, (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`);
    }
    for (const k of fanOut.filter((k) => k !== 1)) {
      for (const [kind, byK] of times) addRow(`scale: ${kind}, all ${k} done vs 1 receiver`, byK.get(k)!.ms, byK.get(1)!.ms);
    }
    if (busybox) {
      for (const server of servers.filter((server) => server !== "busybox httpd")) {
        addRow(`scale: ${server} vs busybox httpd, all ${largest} done`, times.get(server)!.get(largest)!.ms, busybox.get(largest)!.ms);
      }
      addRow(`scale: multicast vs HTTP (busybox httpd), all ${largest} done`, times.get("multicast")!.get(largest)!.ms, busybox.get(largest)!.ms);
    }

    // 1 % of the packets that reach each receiver dropped.
    net.receiverLoss(0.01);
    process.stderr.write(`bench: scale: multicast, ${largest} receivers, 1 % loss ...\n`);
    const lossyCast = tally(await multicast(net, largest, payload, outDir, payloadSha), largest);
    addRow(`scale: multicast, ${largest} receivers, 1 % loss: all done vs no loss`, lossyCast.ms, times.get("multicast")!.get(largest)!.ms);
    addRow(`scale: multicast, ${largest} receivers, 1 % loss: server egress vs one image`, lossyCast.egressBytes, payloadBytes, (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`);
    if (busybox) {
      process.stderr.write(`bench: scale: HTTP (busybox httpd), ${largest} receivers, 1 % loss ...\n`);
      const lossyHttp = tally(await http(net, "busybox httpd", largest, payload, outDir, work, payloadSha), largest);
      addRow(`scale: HTTP (busybox httpd), ${largest} receivers, 1 % loss: all done vs no loss`, lossyHttp.ms, busybox.get(largest)!.ms);
    }
    addRow("scale: receivers whose file did not match the image's sha256, of all", mismatches, received, count);
  } finally {
    net.release();
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.rmSync(payloadDir, { recursive: true, force: true });
  }
}
