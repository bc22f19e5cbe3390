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

  test("user-data: state keeps its hash and its keys' sizes; a change is named by those, never a value", () => {
    const secret = change({ user_data_sha256: "a".repeat(64), user_data_keys: { chpasswd: 2 } }, { user_data_sha256: "b".repeat(64), user_data_keys: { chpasswd: 2 } });
    expect(imageStepRun(secret)?.reasons).toEqual(["cloud-init user-data of vm web changed (a value: the same keys, as many lines)"]);
    const grown = change(
      { user_data_sha256: "a".repeat(64), user_data_keys: { hostname: 1, packages: 2, runcmd: 2 }, meta_data: "instance-id: btw-lab-web-1", network_config: "version: 2" },
      { user_data_sha256: "b".repeat(64), user_data_keys: { hostname: 1, packages: 3, runcmd: 3 }, meta_data: `instance-id: ${SECRET}`, network_config: `version: 2 # ${SECRET}` },
    );
    const summary = renderPlanSummary([{ stack: "lab", plan: { resource_changes: [grown] } }]);
    expect(summary).toContain("  - cloud-init user-data of vm web changed: 5 → 7 lines (packages, runcmd)\n");
    expect(summary).not.toContain("the same keys");
    for (const key of ["meta_data", "network_config"]) expect(summary).toContain(`\`triggers_replace.${key}\` changed (cloud-init data, not shown)`);
    expect(summary).not.toContain(SECRET);
    // A lab deployed before: its seed kept the text; the summary says why it is made again.
    const legacy = change({ user_data: `#cloud-config\npassword: ${SECRET}\n` }, { user_data_sha256: "b".repeat(64), user_data_keys: { password: 1 } });
    expect(imageStepRun(legacy)?.reasons).toContain("the seed of vm web keeps user-data's hash in state now, no longer its text: it is made again once");
    expect(renderPlanSummary([{ stack: "lab", plan: { resource_changes: [legacy] } }])).not.toContain(SECRET);
  });

  test("a value with | is escaped in the table", () => {
    const piped = change({ url: "a|b" }, { url: "a|c" });
    expect(renderPlanSummary([{ stack: "lab", plan: { resource_changes: [piped] } }])).toContain("`triggers_replace.url`: `a\\|b` → `a\\|c`");
  });
});
