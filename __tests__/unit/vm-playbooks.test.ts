// vms[].playbooks: resolved from the lab file's folder and checked at synth, run after
// readiness by a step whose triggers follow each playbook's folder (roles, vars).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { ConfigError } from "../../lib/config/config";
import { imageStepRun } from "../../lib/plan/plan-summary";
import { LabStack } from "../../stacks/lab-stack";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { testLab } from "../../testkit/lab-yaml";

type Resources = Record<string, Record<string, any>>;

describe("a VM's playbooks", () => {
  let dir: string;
  let labFile: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-pb-unit-"));
    labFile = path.join(dir, "labs", "lab.yaml");
    fs.mkdirSync(path.join(dir, "labs", "playbooks", "roles", "web", "tasks"), { recursive: true });
    fs.writeFileSync(path.join(dir, "labs", "playbooks", "site.yml"), "- hosts: all\n  roles: [web]\n");
    fs.writeFileSync(path.join(dir, "labs", "playbooks", "roles", "web", "tasks", "main.yml"), "- ansible.builtin.ping:\n");
    fs.writeFileSync(path.join(dir, "labs", "playbooks", "check.yml"), "- hosts: all\n  tasks: []\n");
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const lab = (vms: Record<string, unknown>[]) => testLab({ vms });
  const load = (vms: Record<string, unknown>[]) => parseConfig(stringify(lab(vms)), labFile, { cacheDir: "/var/cache/btw-test" });
  const problems = (vms: Record<string, unknown>[]) => {
    try {
      load(vms);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems;
    }
    throw new Error("the config was accepted");
  };
  const synth = (vms: Record<string, unknown>[]): Resources => synthStack((app) => new LabStack(app, "lab", load(vms))).resource;
  const playbookSteps = (resources: Resources) => Object.entries(resources.terraform_data).filter(([name]) => /^vm-.+_playbooks/.test(name));

  test("paths are relative to the lab file's folder, in order; a VM without playbooks has none", () => {
    const config = load([{ name: "web", playbooks: ["playbooks/site.yml", `${dir}/labs/playbooks/check.yml`] }, { name: "db" }]);
    expect(config.vms.map((vm) => vm.playbooks)).toEqual([[`${dir}/labs/playbooks/site.yml`, `${dir}/labs/playbooks/check.yml`], []]);
  });

  test("a missing playbook, a folder, or one beside the lab file is refused naming its key", () => {
    fs.writeFileSync(path.join(dir, "labs", "beside.yml"), "- hosts: all\n  tasks: []\n");
    expect(problems([{ name: "web", playbooks: ["playbooks/site.yml", "playbooks/nosuch.yml", "playbooks", "beside.yml"] }])).toEqual([
      `vms[0].playbooks[1]: ${dir}/labs/playbooks/nosuch.yml does not exist`,
      `vms[0].playbooks[2]: ${dir}/labs/playbooks is not a file (give the playbook's .yml; its roles and vars go beside it)`,
      `vms[0].playbooks[3]: ${dir}/labs/beside.yml is in the lab file's folder (or above it): put each playbook in a folder of its own, with its roles and vars, e.g. playbooks/site.yml`,
    ]);
    expect(problems([{ name: "web", playbooks: ["play books/site.yml"] }])).toEqual(["vms[0].playbooks[0]: must not contain whitespace or control characters"]);
    expect(problems([{ name: "web", playbooks: ["${HOME}/site.yml"] }])).toEqual([expect.stringMatching(/^vms\[0\]\.playbooks\[0\]: must not contain '\$\{'/)]);
  });

  test("the step runs run-playbooks.sh after readiness, through the lab's libvirt URI, for the VMs that have playbooks", () => {
    const steps = playbookSteps(synth([{ name: "web", playbooks: ["playbooks/site.yml", "playbooks/check.yml"] }, { name: "db" }]));
    expect(steps.map(([name]) => name)).toEqual([expect.stringMatching(/^vm-web_playbooks/)]);
    const [, step] = steps[0];
    expect(step.depends_on).toEqual([expect.stringMatching(/^terraform_data\.vm-web_cloud-init-ready/)]);
    expect(step.provisioner[0]["local-exec"].command).toMatch(
      new RegExp(`run-playbooks\\.sh --uri qemu:///system --domain btw-btwtest-web --vm web --playbook ${dir}/labs/playbooks/site\\.yml --playbook ${dir}/labs/playbooks/check\\.yml$`),
    );
    expect(step.triggers_replace.domain).toMatch(/^\$\{libvirt_domain\.vm-web_domain_\w+\.id\}$/);
    expect(step.triggers_replace.playbooks).toEqual([`${dir}/labs/playbooks/site.yml`, `${dir}/labs/playbooks/check.yml`]);
  });

  test("a role edit changes its playbook's trigger and no other; an unchanged folder keeps it", () => {
    const vms = [{ name: "web", playbooks: ["playbooks/site.yml"] }];
    const folders = () => playbookSteps(synth(vms))[0][1].triggers_replace.playbook_folders;
    const before = folders();
    expect(Object.keys(before)).toEqual([`${dir}/labs/playbooks/site.yml`]);
    expect(folders()).toEqual(before);
    // Hidden entries (an editor's swap file, .git) are not the playbook's.
    fs.writeFileSync(path.join(dir, "labs", "playbooks", ".site.yml.swp"), "x");
    expect(folders()).toEqual(before);
    fs.writeFileSync(path.join(dir, "labs", "playbooks", "roles", "web", "tasks", "main.yml"), "- ansible.builtin.ping:\n- ansible.builtin.setup:\n");
    expect(folders()[`${dir}/labs/playbooks/site.yml`]).not.toBe(before[`${dir}/labs/playbooks/site.yml`]);
  });

  test("the plan summary says which playbook's folder changed", () => {
    const run = imageStepRun({
      address: "terraform_data.vm-web_playbooks_0123ABCD",
      type: "terraform_data",
      name: "vm-web_playbooks_0123ABCD",
      change: {
        actions: ["delete", "create"],
        before: { triggers_replace: { domain: "d1", playbooks: ["/l/p/site.yml", "/l/q/check.yml"], playbook_folders: { "/l/p/site.yml": "a", "/l/q/check.yml": "b" } } },
        after: { triggers_replace: { domain: "d1", playbooks: ["/l/p/site.yml", "/l/q/check.yml"], playbook_folders: { "/l/p/site.yml": "c", "/l/q/check.yml": "b" } } },
      },
    });
    expect(run).toMatchObject({ kind: "playbooks", title: "run the playbooks of vm web", reasons: ["the folder of playbook `/l/p/site.yml` changed (the playbook, its roles or vars)"] });
  });
});
