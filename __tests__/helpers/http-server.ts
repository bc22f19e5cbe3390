// A static file server on 127.0.0.1 for the stand-in cloud image, with Range
// support (resumed downloads) and a log of what was asked for.
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as path from "path";

export interface ServedRequest {
  path: string;
  range?: string;
  status: number;
}

export interface FileServer {
  baseUrl: string;
  requests: ServedRequest[];
  /** Bytes after which the next response for this path is cut (to simulate an interrupted download). */
  cutAfter: Map<string, number>;
  close(): Promise<void>;
}

export async function serveDirectory(root: string): Promise<FileServer> {
  const requests: ServedRequest[] = [];
  const cutAfter = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent((req.url ?? "/").split("?")[0]);
    const file = path.join(root, path.normalize(urlPath).replace(/^(\.\.[/\\])+/, ""));
    const record: ServedRequest = { path: urlPath, range: req.headers.range, status: 200 };
    requests.push(record);
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      record.status = 404;
      res.writeHead(404).end("not found\n");
      return;
    }
    const size = fs.statSync(file).size;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      if (start >= size) {
        record.status = 416;
        res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
        return;
      }
      record.status = 206;
      res.writeHead(206, { "Content-Length": size - start, "Content-Range": `bytes ${start}-${size - 1}/${size}`, "Accept-Ranges": "bytes" });
    } else {
      res.writeHead(200, { "Content-Length": size, "Accept-Ranges": "bytes" });
    }
    const cut = cutAfter.get(urlPath);
    if (cut !== undefined) {
      cutAfter.delete(urlPath);
      const stream = fs.createReadStream(file, { start, end: start + cut - 1 });
      stream.on("data", (chunk) => res.write(chunk));
      stream.on("end", () => res.destroy());
      return;
    }
    fs.createReadStream(file, { start }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    cutAfter,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
