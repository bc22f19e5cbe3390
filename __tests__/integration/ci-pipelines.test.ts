// The CI pipelines run: the GitHub workflows pass actionlint, and gitlab-ci-local
// checks the GitLab pipeline: which jobs run for a merge request and on the
// default branch, and that the synth and plan jobs really run in a shell
// executor, the plan posting its summary to a stand-in GitLab API on 127.0.0.1.
// A fork's merge request never reaches the libvirt host's plan.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { testLab, writeLab } from "../../testkit/lab-yaml";
import { runScript } from "../../testkit/image";

const GITLAB_CI_LOCAL = path.join(PROJECT_DIR, "node_modules", ".bin", "gitlab-ci-local");
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-ci-"));
afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the stand-in API answers meanwhile). */
function runAsync(command: string, args: string[], cwd = PROJECT_DIR): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, FORCE_COLOR: "0" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (data) => (stdout += data));
    child.stderr.on("data", (data) => (stderr += data));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** gitlab-ci-local on the project's .gitlab-ci.yml, in place (so uncommitted files count), its state kept in a temporary folder. */
async function gitlabCiLocal(args: string[], variables: Record<string, string>): Promise<Run & { stateDir: string }> {
  const stateDir = fs.mkdtempSync(path.join(workDir, "gcl-"));
  // Setting GitLab's predefined variables is the point here, not a mistake to warn about.
  const predefined = Object.keys(variables).filter((name) => name.startsWith("CI_"));
  const result = await runAsync(GITLAB_CI_LOCAL, [
    "--no-color",
    // Relative to the project: gitlab-ci-local takes no absolute state folder.
    "--state-dir",
    path.relative(PROJECT_DIR, stateDir),
    ...Object.entries(variables).flatMap(([name, value]) => ["--variable", `${name}=${value}`]),
    ...(predefined.length > 0 ? ["--ignore-predefined-vars", predefined.join(",")] : []),
    ...args,
  ]);
  return { ...result, stateDir };
}

async function jobNames(variables: Record<string, string>, unset: string[] = []): Promise<string[]> {
  const result = await gitlabCiLocal(["--list-json", ...unset.flatMap((name) => ["--unset-variable", name])], variables);
  expect(result.status).toBe(0);
  const jobs: { name: string; when: string }[] = JSON.parse(result.stdout);
  return jobs.filter((job) => job.when !== "never").map((job) => job.name);
}

describe("GitHub workflows", () => {
  test("pr.yml and main.yml pass actionlint (built by scripts/host/install-ci-tools.sh)", () => {
    const toolsDir = execFileSync("sh", [path.join(PROJECT_DIR, "scripts", "host", "install-ci-tools.sh")], { encoding: "utf8", timeout: 600_000 }).trim();
    const workflows = ["pr.yml", "main.yml"].map((file) => path.join(".github", "workflows", file));
    const lint = spawnSync(path.join(toolsDir, "actionlint"), ["-no-color", ...workflows], { cwd: PROJECT_DIR, encoding: "utf8" });
    // Findings print on stdout with status 1; a missing binary or a crash (no status) is a failure too, never "no findings".
    const problem = lint.status === 0 ? "" : `${lint.error?.message ?? ""} ${lint.signal ?? ""} ${lint.stderr ?? ""}`.trim();
    expect({ status: lint.status, findings: lint.stdout, problem }).toEqual({ status: 0, findings: "", problem: "" });
  }, 600_000);
});

describe("the GitLab pipeline (gitlab-ci-local)", () => {
  test("a merge request runs synth, the unit tests and the plan, and builds no image", async () => {
    // GitLab sets no CI_COMMIT_BRANCH in merge request pipelines.
    const ownMr = { CI_PIPELINE_SOURCE: "merge_request_event", CI_PROJECT_ID: "42", CI_MERGE_REQUEST_SOURCE_PROJECT_ID: "42" };
    expect(await jobNames(ownMr, ["CI_COMMIT_BRANCH"])).toEqual(["synth", "unit-tests", "plan"]);
  }, 120_000);

  test("a fork's merge request gets no plan", async () => {
    const forkMr = { CI_PIPELINE_SOURCE: "merge_request_event", CI_PROJECT_ID: "42", CI_MERGE_REQUEST_SOURCE_PROJECT_ID: "43" };
    expect(await jobNames(forkMr, ["CI_COMMIT_BRANCH"])).toEqual(["synth", "unit-tests"]);
  }, 120_000);

  test("the default branch runs synth, the unit tests and the image build, and no plan", async () => {
    expect(await jobNames({ CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "main", CI_DEFAULT_BRANCH: "main" })).toEqual(["synth", "unit-tests", "build-images"]);
  }, 120_000);

  test("the synth and plan jobs run in a shell executor; the plan is an artifact and an MR note", async () => {
    const notes: { method?: string; url?: string; token?: string | string[]; body: string }[] = [];
    const api = http.createServer((request, response) => {
      let body = "";
      request.on("data", (data) => (body += data));
      request.on("end", () => {
        notes.push({ method: request.method, url: request.url, token: request.headers["private-token"], body });
        response.writeHead(201, { "Content-Type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
    const lab = writeLab(testLab({ name: "btwplan6" }), fs.mkdtempSync(path.join(workDir, "lab-")));
    try {
      const result = await gitlabCiLocal(["synth", "plan"], {
        CI_PIPELINE_SOURCE: "merge_request_event",
        CI_API_V4_URL: `http://127.0.0.1:${(api.address() as AddressInfo).port}/api/v4`,
        CI_PROJECT_ID: "42",
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID: "42",
        CI_MERGE_REQUEST_IID: "7",
        GITLAB_TOKEN: "test-token",
        BTW_CONFIG: lab,
        BTW_STATE_DIR: path.join(workDir, "state"),
        BTW_SYNTH_DIR: path.join(workDir, "cdktf.out"),
      });
      const log = `${result.stdout}${result.stderr}`;
      expect(log).toContain("PASS  synth");
      expect(log).toContain("PASS  plan");
      expect(result.status).toBe(0);
      expect(fs.existsSync(path.join(workDir, "cdktf.out", "labs", "btwplan6", "stacks", "lab", "cdk.tf.json"))).toBe(true);

      const artifact = fs.readFileSync(path.join(result.stateDir, "artifacts", "plan", "cdktf.out", "plan-summary.md"), "utf8");
      expect(artifact).toMatch(/^# Plan summary\n/);
      expect(artifact).toContain("- **customize image minimal**");
      expect(artifact).toContain("will run: first build");

      expect(notes).toHaveLength(1);
      expect(notes[0]).toMatchObject({ method: "POST", url: "/api/v4/projects/42/merge_requests/7/notes", token: "test-token" });
      expect(JSON.parse(notes[0].body)).toEqual({ body: artifact });
    } finally {
      await new Promise((resolve) => api.close(resolve));
    }
  }, 600_000);
});

describe("publish-image.sh (what the image jobs upload)", () => {
  test("writes a standalone qcow2 with compressed clusters and the same contents; zstd on request; bad input named", () => {
    const dir = fs.mkdtempSync(path.join(workDir, "publish-"));
    const image = path.join(dir, "image.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"]);
    // Compressible data in the first 16 MiB, so compression shows in the size.
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 16M", image], { stdio: "ignore" });
    for (const compression of ["zlib", "zstd"]) {
      const output = path.join(dir, "dist", `${compression}.qcow2`);
      const run = runScript("publish-image.sh", ["--image", image, "--output", output, ...(compression === "zstd" ? ["--compression", "zstd"] : [])]);
      expect(run.status).toBe(0);
      const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", output], { encoding: "utf8" }));
      expect(info["backing-filename"]).toBeUndefined();
      expect(info["format-specific"].data["compression-type"]).toBe(compression);
      expect(info["actual-size"]).toBeLessThan(1024 * 1024);
      expect(fs.statSync(output).mode & 0o777).toBe(0o644);
      execFileSync("qemu-img", ["compare", "-q", image, output]);
    }
    expect(fs.readdirSync(path.join(dir, "dist")).sort()).toEqual(["zlib.qcow2", "zstd.qcow2"]);
    const bad = runScript("publish-image.sh", ["--image", image, "--output", path.join(dir, "x.qcow2"), "--compression", "xz"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--compression is zlib or zstd, not 'xz'");
    const missing = runScript("publish-image.sh", ["--image", path.join(dir, "none.qcow2"), "--output", path.join(dir, "y.qcow2")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`no such image: ${path.join(dir, "none.qcow2")}`);
  });
});

describe("split-download.sh (a published file over a host's limit)", () => {
  test("splits it into parts of at most the size given, which the printed command joins and checks; a changed part fails the check; a file that fits is left alone", () => {
    const dir = fs.mkdtempSync(path.join(workDir, "split-"));
    const file = path.join(dir, "btw-img-tiny.qcow2");
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123);
    fs.writeFileSync(file, data);
    const run = runScript("split-download.sh", ["--file", file, "--part-mib", "2"]);
    expect({ status: run.status, stderr: run.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining("into 3 parts of at most 2 MiB") });
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual(["btw-img-tiny.qcow2.part-00", "btw-img-tiny.qcow2.part-01", "btw-img-tiny.qcow2.part-02", "btw-img-tiny.qcow2.sha256"]);
    for (const part of files.filter((name) => name.includes(".part-"))) expect(fs.statSync(path.join(dir, part)).size).toBeLessThanOrEqual(2 * 1024 * 1024);
    // The command it printed, as someone who downloaded the parts runs it.
    const join = /join and check: (.*)$/m.exec(run.stderr)![1];
    execFileSync("sh", ["-c", join], { cwd: dir });
    expect(crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")).toBe(crypto.createHash("sha256").update(data).digest("hex"));
    // One byte changed in a part: the joined file fails its check.
    fs.rmSync(file);
    const part = path.join(dir, "btw-img-tiny.qcow2.part-01");
    const bytes = fs.readFileSync(part);
    bytes[1000] ^= 0xff;
    fs.writeFileSync(part, bytes);
    expect(spawnSync("sh", ["-c", join], { cwd: dir, encoding: "utf8" }).status).not.toBe(0);
    // A file that fits stays one file.
    const small = path.join(dir, "small.qcow2");
    fs.writeFileSync(small, crypto.randomBytes(1024));
    const fits = runScript("split-download.sh", ["--file", small, "--part-mib", "2"]);
    expect({ status: fits.status, stderr: fits.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining("fits in one part of 2 MiB: left as it is") });
    expect(fs.existsSync(small)).toBe(true);
    expect(runScript("split-download.sh", ["--file", small, "--part-mib", "0"]).status).toBe(2);
  });
});
