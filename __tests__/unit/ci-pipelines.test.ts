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

describe("the GitLab pipeline", () => {
  test("the plan job takes only the protected runner", () => {
    const pipeline = parse(fs.readFileSync(path.join(PROJECT_DIR, ".gitlab-ci.yml"), "utf8"));
    expect(pipeline.plan.tags).toEqual(["libvirt-protected"]);
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
