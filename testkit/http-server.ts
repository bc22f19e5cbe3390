// Serves a folder on 127.0.0.1 from a child process (see file-server.js).
import { ChildProcess, fork } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface ServedRequest {
  path: string;
  range?: string;
  status: number;
}

export interface FileServer {
  baseUrl: string;
  requests(): ServedRequest[];
  /** Cut the next response for urlPath after `bytes` bytes (an interrupted download). */
  cutNext(urlPath: string, bytes: number): Promise<void>;
  /** Send `bytes` bytes of the next response for urlPath, then nothing until the client leaves (a stalled download). */
  stallNext(urlPath: string, bytes: number): Promise<void>;
  close(): Promise<void>;
}

export async function serveDirectory(root: string): Promise<FileServer> {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "btw-http-")), "requests.jsonl");
  fs.writeFileSync(log, "");
  const child: ChildProcess = fork(path.join(__dirname, "file-server.js"), [path.resolve(root), log], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once("data", (data: Buffer) => resolve(Number(data.toString().trim())));
    child.once("exit", (code) => reject(new Error(`file server exited with ${code}`)));
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests: () =>
      fs
        .readFileSync(log, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line)),
    cutNext: (urlPath, bytes) =>
      new Promise((resolve) => {
        child.once("message", () => resolve());
        child.send({ cut: urlPath, after: bytes });
      }),
    stallNext: (urlPath, bytes) =>
      new Promise((resolve) => {
        child.once("message", () => resolve());
        child.send({ stall: urlPath, after: bytes });
      }),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => {
          fs.rmSync(path.dirname(log), { recursive: true, force: true });
          resolve();
        });
        child.kill();
      }),
  };
}
