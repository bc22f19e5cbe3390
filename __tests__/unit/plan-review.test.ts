// Plan review: the Markdown summary (lib/plan/plan-summary.ts) of a plan, rendered
// from plan JSON written here; the real engine's plans are in
// __tests__/integration/plan-review.test.ts.
import { imageStepRun, renderPlanSummary, ResourceChange } from "../../lib/plan/plan-summary";

// Stands for a password or token in user-data: no summary may hold it.
const SECRET = "s3cr3t-7f3a9c";

describe("the summary never shows cloud-init data or sensitive values and keeps tables intact", () => {
  const change = (before: unknown, after: unknown, marks: Partial<ResourceChange["change"]> = {}): ResourceChange => ({
    address: "terraform_data.vm-web_seed_0123ABCD",
    type: "terraform_data",
    name: "vm-web_seed_0123ABCD",
    change: { actions: ["delete", "create"], before: { id: "x", triggers_replace: before }, after: { triggers_replace: after }, ...marks },
  });

  test("user-data, sensitive in the engine's plans, is named with its line counts and top-level keys, never its values", () => {
    const secret = change(
      { user_data: "#cloud-config\nchpasswd:\n  users: [{name: debian, password: old}]\n" },
      { user_data: `#cloud-config\nchpasswd:\n  users: [{name: debian, password: ${SECRET}}]\n` },
      { before_sensitive: { triggers_replace: { user_data: true } }, after_sensitive: { triggers_replace: { user_data: true } } },
    );
    const summary = renderPlanSummary([{ stack: "lab", plan: { resource_changes: [secret] } }]);
    expect(summary).toContain("`triggers_replace.user_data` changed (sensitive)");
    expect(summary).toContain("  - cloud-init user-data of vm web changed: 1 line added, 1 removed (chpasswd)\n");
    expect(summary).not.toContain(SECRET);
    expect(summary).not.toContain("debian");
    expect(imageStepRun(secret)?.reasons).toEqual(["cloud-init user-data of vm web changed: 1 line added, 1 removed (chpasswd)"]);
  });

  test("a user-data change names its keys and counts its lines; no cloud-init value is shown", () => {
    const before = "#cloud-config\nhostname: web\npackages:\n  - curl\nruncmd:\n  - echo old\n";
    const after = `#cloud-config\nhostname: web\npackages:\n  - curl\n  - jq\nruncmd:\n  - echo token=${SECRET}\n  - systemctl restart app\n`;
    const seed = change(
      { user_data: before, meta_data: "instance-id: btw-lab-web-1", network_config: "version: 2" },
      { user_data: after, meta_data: `instance-id: ${SECRET}`, network_config: `version: 2 # ${SECRET}` },
    );
    const summary = renderPlanSummary([{ stack: "lab", plan: { resource_changes: [seed] } }]);
    expect(summary).toContain("  - cloud-init user-data of vm web changed: 3 lines added, 1 removed (packages, runcmd)\n");
    for (const key of ["user_data", "meta_data", "network_config"]) {
      expect(summary).toContain(`\`triggers_replace.${key}\` changed (cloud-init data, not shown)`);
    }
    expect(summary).not.toContain(SECRET);
    expect(summary).not.toContain("echo");
  });

  test("a value with | is escaped in the table", () => {
    const piped = change({ url: "a|b" }, { url: "a|c" });
    expect(renderPlanSummary([{ stack: "lab", plan: { resource_changes: [piped] } }])).toContain("`triggers_replace.url`: `a\\|b` → `a\\|c`");
  });
});
