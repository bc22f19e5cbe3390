// The CI pipelines as written: a fork's pull or merge request never reaches the
// libvirt host's plan. Running them (actionlint, gitlab-ci-local) is in
// __tests__/integration/ci-pipelines.test.ts.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT_DIR } from "../../lib/config";

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
