// The CI pipelines as written: a fork's pull or merge request never reaches the
// libvirt host's plan. Running them (actionlint, gitlab-ci-local) is in
// __tests__/integration/ci-pipelines.test.ts.
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { parseConfig } from "../helpers/test-config";
import { ImagesStack } from "../../stacks/images-stack";
import { testLab } from "../../testkit/lab-yaml";
import { synthStack } from "../helpers/synth-stack";

describe("GitHub workflows", () => {
  test("pr.yml plans on the self-hosted libvirt runner only for the repository's own branches; a fork gets synth, unit and integration tests on a hosted runner", () => {
    const jobs = parse(fs.readFileSync(path.join(PROJECT_DIR, ".github", "workflows", "pr.yml"), "utf8")).jobs;
    const sameRepo = "github.event.pull_request.head.repo.full_name == github.repository";
    expect(jobs.plan.if).toBe(sameRepo);
    expect(jobs.plan["runs-on"]).toContain("self-hosted");
    expect(jobs.fork.if).toBe(sameRepo.replace("==", "!="));
    expect(jobs.fork["runs-on"]).toBe("ubuntu-latest");
    const forkSteps = jobs.fork.steps.map((step: { run?: string }) => step.run ?? "").join("\n");
    expect(forkSteps).toContain("cdktf synth");
    expect(forkSteps).toContain("npm run test:unit");
    expect(forkSteps).toContain("npm run test:integration");
    expect(forkSteps).not.toContain("plan");
    // Every self-hosted job carries the same-repository guard.
    for (const [name, job] of Object.entries<any>(jobs)) {
      if (JSON.stringify(job["runs-on"]).includes("self-hosted")) expect({ name, if: job.if }).toEqual({ name, if: sameRepo });
    }
  });
});

const workflow = (file: string) => parse(fs.readFileSync(path.join(PROJECT_DIR, ".github", "workflows", file), "utf8"));
const gitlab = () => parse(fs.readFileSync(path.join(PROJECT_DIR, ".gitlab-ci.yml"), "utf8"));

describe("who publishes (GitHub)", () => {
  test("pull requests never run on the publishing runner, and the publishing job runs nowhere else", () => {
    const pr = workflow("pr.yml").jobs;
    for (const [name, job] of Object.entries<any>(pr)) expect({ name, labels: [job["runs-on"]].flat() }).not.toEqual({ name, labels: expect.arrayContaining(["btw-publish"]) });
    expect(pr.plan["runs-on"]).toEqual(["self-hosted", "linux", "x64", "btw-plan"]);
    expect(workflow("main.yml").jobs.images["runs-on"]).toEqual(["self-hosted", "linux", "x64", "btw-publish"]);
  });

  test("only the plan job may write, and only to pull requests", () => {
    const pr = workflow("pr.yml");
    expect(pr.permissions).toEqual({ contents: "read" });
    expect(pr.jobs.plan.permissions).toEqual({ contents: "read", "pull-requests": "write" });
    expect(pr.jobs.fork.permissions).toBeUndefined();
    expect(workflow("main.yml").permissions).toEqual({ contents: "read" });
  });

  test("the publishing job builds from a cache of its own, emptied before the host is set up", () => {
    const job = workflow("main.yml").jobs.images;
    const runs = job.steps.map((step: { run?: string }) => step.run ?? "");
    const emptied = runs.indexOf('rm -rf "$RUNNER_TEMP/btw-publish-cache"\necho "BTW_CACHE_DIR=$RUNNER_TEMP/btw-publish-cache" >> "$GITHUB_ENV"\n');
    expect(emptied).toBeLessThan(runs.findIndex((run: string) => run.includes("setup-host.sh")));
  });
});

describe("the GitLab pipeline", () => {
  test("the plan job takes only the protected runner", () => {
    expect(gitlab().plan.tags).toEqual(["libvirt-protected"]);
  });

  test("no job a merge request runs shares a runner with the image build, which runs on the publishing runner only", () => {
    const pipeline = gitlab();
    const jobs = Object.entries<any>(pipeline).filter(([, job]) => job && typeof job === "object" && "script" in job);
    const tagsOf = (job: any) => job.tags ?? pipeline.default.tags;
    const mergeRequestJobs = jobs.filter(([name]) => name !== "build-images");
    expect(mergeRequestJobs.map(([name]) => name).sort()).toEqual(["plan", "synth", "unit-tests"]);
    expect(tagsOf(pipeline["build-images"])).toEqual(["libvirt-publish"]);
    for (const [name, job] of mergeRequestJobs) expect({ name, tags: tagsOf(job) }).not.toEqual({ name, tags: expect.arrayContaining(["libvirt-publish"]) });
  });

  test("the image build empties a cache of its own before setting up the host, and after", () => {
    const job = gitlab()["build-images"];
    expect(job.variables.BTW_CACHE_DIR).toBe("$CI_PROJECT_DIR/.btw-publish-cache");
    expect(job.before_script).toEqual(['rm -rf "$BTW_CACHE_DIR"', "sh scripts/host/setup-host.sh", ". ./.btw/env.sh"]);
    expect(job.after_script).toEqual(['rm -rf "$BTW_CACHE_DIR"']);
  });

  test("GITLAB_TOKEN is read by the plan job only, whose environment the variable is scoped to", () => {
    const pipeline = gitlab();
    expect(pipeline.plan.environment).toEqual({ name: "plan-review", action: "prepare" });
    const readers = Object.entries<any>(pipeline)
      .filter(([, job]) => JSON.stringify(job).includes("GITLAB_TOKEN"))
      .map(([name]) => name);
    expect(readers).toEqual(["plan"]);
  });
});

describe("the image jobs (GitHub main.yml, GitLab build-images)", () => {
  const scripts = {
    github: parse(fs.readFileSync(path.join(PROJECT_DIR, ".github", "workflows", "main.yml"), "utf8"))
      .jobs.images.steps.map((step: { run?: string }) => step.run ?? "")
      .join("\n"),
    gitlab: parse(fs.readFileSync(path.join(PROJECT_DIR, ".gitlab-ci.yml"), "utf8"))["build-images"].script.join("\n"),
  };

  test.each(Object.keys(scripts))("%s deploys the images stack instead of running the image scripts itself", (ci) => {
    const script = scripts[ci as keyof typeof scripts];
    expect(script).toMatch(/cdktf deploy images --output "\$synth_dir" .*--outputs-file "\$synth_dir\/images-outputs\.json"/);
    expect(script).not.toMatch(/prepare-cloud-img\.sh|customize-image\.sh/);
    expect(script).toContain(`jq -r '.images.images | keys[]' "$synth_dir/images-outputs.json"`);
  });

  test.each(Object.keys(scripts))("%s publishes each image with publish-image.sh, the one place that says how", (ci) => {
    const script = scripts[ci as keyof typeof scripts];
    expect(script).toContain('sh scripts/steps/publish-image.sh --image "$image" --output "dist/btw-img-$profile.qcow2"');
    expect(script).not.toMatch(/qemu-img convert/);
  });

  test("the output the jobs read names each profile's qcow2", () => {
    const config = parseConfig(stringify(testLab()), "test.yaml", { cacheDir: "/var/cache/btw-test" });
    const outputs = synthStack((app) => new ImagesStack(app, "images", config)).output;
    expect(Object.keys(outputs.images.value)).toEqual(["minimal"]);
  });
});
