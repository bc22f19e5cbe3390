// A static file server on 127.0.0.1, run in its own process so tests may block
// on a script (spawnSync) while it downloads. Range requests are served (for
// resumed downloads); every request is appended as a JSON line to LOG.
// usage: node file-server.js ROOT LOG ; prints the port; a message
// {cut: "/path", after: N} makes the next response for that path stop after N bytes,
// {stall: "/path", after: N} makes it send N bytes and then nothing, until the client leaves.
const fs = require("fs");
const http = require("http");
const path = require("path");

const [root, log] = process.argv.slice(2);
const cutAfter = new Map();
const stallAfter = new Map();
process.on("message", (m) => {
  if (m.stall) stallAfter.set(m.stall, m.after);
  else cutAfter.set(m.cut, m.after);
  process.send({ ack: m.cut ?? m.stall });
});

const server = http.createServer((req, res) => {
  const urlPath = decodeURIComponent((req.url || "/").split("?")[0]);
  const file = path.join(root, path.normalize(urlPath));
  const record = { path: urlPath, range: req.headers.range, status: 200 };
  const done = () => fs.appendFileSync(log, JSON.stringify(record) + "\n");
  if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    record.status = 404;
    done();
    res.writeHead(404).end("not found\n");
    return;
  }
  const size = fs.statSync(file).size;
  let start = 0;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range || "");
  if (range) {
    start = Number(range[1]);
    if (start >= size) {
      record.status = 416;
      done();
      res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      return;
    }
    record.status = 206;
    res.writeHead(206, { "Content-Length": size - start, "Content-Range": `bytes ${start}-${size - 1}/${size}`, "Accept-Ranges": "bytes" });
  } else {
    res.writeHead(200, { "Content-Length": size, "Accept-Ranges": "bytes" });
  }
  done();
  const stall = stallAfter.get(urlPath);
  if (stall !== undefined) {
    stallAfter.delete(urlPath);
    fs.createReadStream(file, { start, end: start + stall - 1 }).on("data", (chunk) => res.write(chunk));
    return;
  }
  const cut = cutAfter.get(urlPath);
  if (cut !== undefined) {
    cutAfter.delete(urlPath);
    const stream = fs.createReadStream(file, { start, end: start + cut - 1 });
    stream.on("data", (chunk) => res.write(chunk));
    stream.on("end", () => setTimeout(() => res.destroy(), 100));
    return;
  }
  fs.createReadStream(file, { start }).pipe(res);
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
