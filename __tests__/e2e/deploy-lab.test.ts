// The main job, end to end: `cdktf deploy lab` boots verified VMs from Debian's
// real generic image on an isolated network; a VM's Ansible playbooks (vms[].playbooks)
// run after readiness through its guest agent, again only when their folder changes,
// and a failing task fails the deploy naming the VM and the task; a profile edit
// reaches every VM that boots it; `cdktf destroy lab` leaves nothing. The lab boots
// the fixture profile ansible-role (over minimal, for the agent), whose role's
// package, templated file and enabled unit are checked in the running VMs.
import * as crypto from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { planStack } from "../../lib/plan/engine";
import { renderPlanSummary } from "../../lib/plan/plan-summary";
import { stringify } from "yaml";
import { planChanges } from "../../testkit/engine";
import { testLab } from "../../testkit/lab-yaml";
import { LabUnderTest } from "../../testkit/lab-test";
import { guestExec, hostLeftovers, leftovers, virsh, volumeNames } from "../../testkit/libvirt";

const LAB = "btwe2e";
const PREFIX = `btw-${LAB}`;
// Reaches the guest byte for byte: Terraform must not read it as a template.
const LITERAL = "${HOME} %{x} $${y}";
// Stands for a secret in user-data: no deploy output may hold it (the engine shows the seed's trigger as sensitive).
const SECRET = "pb-s3cr3t-41c9";
const playbookLines = (output: string) => output.split("\n").filter((line) => /vm-alpha_playbooks|run-playbooks/.test(line));

describe("deploy a two-VM lab, change it, destroy it", () => {
  const labUnderTest = new LabUnderTest(LAB, "deploy-lab");
  const { workspace } = labUnderTest;
  const profilesDir = path.join(workspace.dir, "profiles");
  const playbooksDir = path.join(workspace.dir, "playbooks");
  const site = path.join(playbooksDir, "site.yml");
  const failing = path.join(workspace.dir, "failing", "site.yml");
  /** The lab without its VMs. */
  let lab: Record<string, unknown>;
  /** The lab with alpha running these playbooks (paths from the lab file's folder) and beta with this much memory. */
  const labWith = ({ playbooks = ["playbooks/site.yml"], betaMemory = 1024 } = {}) => ({
    ...lab,
    vms: [
      { name: "alpha", playbooks, user_data: { runcmd: [`printf '%s' '${LITERAL}' > /run/btw-literal`, `echo ${SECRET} > /run/btw-secret`] } },
      { name: "beta", memory: betaMemory },
    ],
  });
  /** The lab with beta's memory raised from 1024 to 1280 MiB. */
  const withBetaMemory = () => labWith({ betaMemory: 1280 });

  const cat = (name: string, file: string) => guestExec(`${PREFIX}-${name}`, "/bin/cat", [file]);
  /** How many times alpha's playbook ran on the running machine. */
  const playbookRuns = () => cat("alpha", "/var/lib/btw-playbook-runs").stdout.split("\n").filter(Boolean).length;
  const setToken = (token: string) => fs.writeFileSync(path.join(playbooksDir, "group_vars", "all.yml"), `mark_token: ${token}\n`);
  let firstDeployOutput = "";

  beforeAll(async () => {
    const imageBaseUrl = await labUnderTest.start();
    fs.cpSync(path.join(PROJECT_DIR, "profiles"), profilesDir, { recursive: true });
    // The lab's profile: the fixture ansible-role over minimal (the guest agent).
    fs.cpSync(path.join(PROJECT_DIR, "__tests__", "fixtures", "profiles", "ansible-role"), path.join(profilesDir, "ansible-role"), { recursive: true });
    fs.writeFileSync(path.join(profilesDir, "ansible-role", "extends"), "minimal\n");
    // Alpha's playbook, with a role and group_vars: it records each run and what cloud-init said when it ran.
    fs.mkdirSync(path.join(playbooksDir, "roles", "mark", "tasks"), { recursive: true });
    fs.mkdirSync(path.join(playbooksDir, "group_vars"), { recursive: true });
    fs.writeFileSync(site, "- name: Mark the VM\n  hosts: all\n  roles:\n    - mark\n");
    fs.writeFileSync(
      path.join(playbooksDir, "roles", "mark", "tasks", "main.yml"),
      [
        "- name: Ask cloud-init",
        "  ansible.builtin.command: cloud-init status",
        "  register: cloud_init",
        "  changed_when: false",
        "- name: Write the mark",
        "  ansible.builtin.copy:",
        "    dest: /etc/btw-playbook",
        '    content: "{{ mark_token }} {{ btw_vm }} {{ inventory_hostname }}\\n{{ cloud_init.stdout }}\\n"',
        '    mode: "0644"',
        "- name: Count the runs",
        "  ansible.builtin.shell: echo run >> /var/lib/btw-playbook-runs",
        "",
      ].join("\n"),
    );
    setToken("first-token");
    fs.mkdirSync(path.dirname(failing), { recursive: true });
    fs.writeFileSync(failing, "- name: Break the VM\n  hosts: all\n  tasks:\n    - name: Fail on purpose\n      ansible.builtin.fail:\n        msg: failing on purpose\n");
    lab = testLab({
      name: LAB,
      imageBaseUrl,
      extra: {
        profile: "ansible-role",
        // A profiles folder of the test's own, so a test can edit a profile of the deployed lab.
        profiles_dir: profilesDir,
        libvirt: { accel: "tcg", firmware: "uefi" },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.21.0/24" },
        readiness: { timeout: 900 },
        // No keys of its own: it gets the project's login key (btw ssh).
        users: [{ name: "debian" }],
      },
    });
    fs.writeFileSync(workspace.configFile, stringify(labWith()));
  }, 1_500_000);

  afterAll(() => labUnderTest.stop(), 900_000);

  test("deploy waits until cloud-init is done in both VMs and outputs their addresses", async () => {
    const run = await workspace.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect({ status: run.status, tail: run.status === 0 ? "" : run.output.slice(-4000) }).toEqual({ status: 0, tail: "" });
    firstDeployOutput = run.output;
    // While it waited it said how long, with the console's last line when there is one (never cloud-init's own:
    // integration console-line).
    // About every 30 s while it waits, the first after 30 s. (The domain is created once its guest agent answers,
    // so readiness may wait less than that: then it says nothing in between.)
    const ready = /wait-for-cloud-init: alpha: ready after (\d+)s/.exec(run.output);
    expect(ready).not.toBeNull();
    const readyAfter = Number(ready![1]);
    const waited = [...run.output.matchAll(/wait-for-cloud-init: alpha: still booting \((\d+)s\)/g)].map((match) => Number(match[1]));
    expect({ readyAfter, waited: waited.filter((seconds) => seconds < 30 || seconds > readyAfter) }).toEqual({ readyAfter, waited: [] });
    expect(waited.length).toBeGreaterThanOrEqual(Math.floor(readyAfter / 30) - 1);
    expect(waited.length).toBeLessThanOrEqual(Math.floor(readyAfter / 30));
    expect(run.output).not.toMatch(/still booting \(\d+s\): .*cloud-init\[/);
    const outputs = workspace.outputs();
    for (const name of ["alpha", "beta"]) {
      const vm = outputs[`vm-${name}`].vm;
      expect(vm).toMatchObject({ name, domain: `${PREFIX}-${name}` });
      // Done when the deploy returns, as the guest says (the outputs' `ready` is a constant of the readiness step).
      expect(guestExec(`${PREFIX}-${name}`, "/usr/bin/cloud-init", ["status"]).stdout).toContain("status: done");
      expect(vm.address[0]).toMatch(/^10\.213\.21\.\d+$/);
      expect(fs.existsSync(vm.console_log)).toBe(true);
      // The seed holds the user-data: root's alone.
      const seedIso = path.join(process.env.BTW_CACHE_DIR as string, "labs", LAB, "seeds", `${name}.iso`);
      expect(fs.statSync(seedIso).mode & 0o777).toBe(0o600);
      // ...and so is its volume in the pool, whose folder anyone may pass through.
      expect(fs.statSync(`/var/lib/libvirt/btw-img/${LAB}/${PREFIX}-${name}-seed.iso`).mode & 0o777).toBe(0o600);
    }
  }, 2_400_000);

  test("the deploy applied alpha's playbook after cloud-init was done, with the VM as the inventory's host; nothing secret printed", () => {
    expect(firstDeployOutput).toContain("run-playbooks: alpha: checking playbook");
    expect(firstDeployOutput).toContain(`run-playbooks: alpha: running playbook ${site} on ${PREFIX}-alpha through its guest agent`);
    expect(firstDeployOutput).toMatch(/TASK \[mark : Write the mark\][\s\S]*changed: \[btw-btwe2e-alpha\]/);
    expect(playbookLines(firstDeployOutput).length).toBeGreaterThan(5);
    expect(firstDeployOutput).not.toContain(SECRET);
    expect(cat("alpha", "/etc/btw-playbook").stdout).toBe(`first-token alpha ${PREFIX}-alpha\nstatus: done\n`);
    expect(playbookRuns()).toBe(1);
  }, 300_000);

  // The plan is what deploy applies: all no-op, it runs no step (no playbook either).
  test("a second deploy with no change does nothing: the plan is all no-op, alpha's playbooks step among them", async () => {
    expect((await workspace.cdktf(["synth"])).status).toBe(0);
    const changes = planChanges(workspace.stackDir());
    expect(changes.length).toBeGreaterThan(10);
    expect(changes.filter((c) => c.actions.join() !== "no-op")).toEqual([]);
    expect(changes.filter((c) => c.address.startsWith("terraform_data.vm-alpha_playbooks")).map((c) => c.actions.join())).toEqual(["no-op"]);
    expect(playbookRuns()).toBe(1);
  }, 600_000);

  test("inside each guest (through the agent) cloud-init is done and the hostname is the VM name", () => {
    for (const name of ["alpha", "beta"]) {
      const status = guestExec(`${PREFIX}-${name}`, "/usr/bin/cloud-init", ["status"]);
      expect(status.stdout).toContain("status: done");
      expect(guestExec(`${PREFIX}-${name}`, "/bin/hostname", []).stdout.trim()).toBe(name);
    }
    expect(guestExec(`${PREFIX}-alpha`, "/bin/cat", ["/run/btw-literal"]).stdout).toBe(LITERAL);
  }, 300_000);

  test("the fixture profile's role left its package, templated file and enabled unit, active in each booted VM", () => {
    for (const name of ["alpha", "beta"]) {
      const domain = `${PREFIX}-${name}`;
      expect(guestExec(domain, "/usr/bin/dpkg-query", ["-W", "-f", "${Status}", "tree"]).stdout).toBe("install ok installed");
      expect(guestExec(domain, "/usr/bin/tree", ["-d", "/etc/ssh"]).exitcode).toBe(0);
      expect(cat(name, "/etc/btw-hello.conf").stdout).toBe("# Ansible managed\ngreeting = hello from group_vars\nport = 4242\nprofile = ansible-role\n");
      expect(guestExec(domain, "/usr/bin/systemctl", ["is-enabled", "btw-hello.service"]).stdout.trim()).toBe("enabled");
      expect(guestExec(domain, "/usr/bin/systemctl", ["is-active", "btw-hello.service"]).stdout.trim()).toBe("active");
      expect(cat(name, "/var/lib/btw-hello-started").exitcode).toBe(0);
    }
  }, 300_000);

  test("`btw ssh` logs in as the lab's user with the project's key, checking the host keys the VM printed on its console", () => {
    const btw = (args: string[]) => spawnSync(path.join(PROJECT_DIR, "bin", "btw"), args, { encoding: "utf8", env: { ...process.env, BTW_CONFIG: workspace.configFile } });
    const status = btw(["ssh", "alpha", "--", "cloud-init", "status"]);
    expect({ status: status.status, stdout: status.stdout, stderr: status.status === 0 ? "" : status.stderr }).toEqual({ status: 0, stdout: "status: done\n", stderr: "" });
    expect(btw(["ssh", "beta", "--", "id", "-un"]).stdout).toBe("debian\n");
    // Nothing on stderr: the host keys were the ones alpha's first boot printed on its console (none trusted blindly).
    expect(fs.readdirSync(path.join(PROJECT_DIR, ".btw", "ssh")).filter((file) => file.startsWith("known_hosts."))).toEqual([]);
    expect(btw(["ssh", "gamma"]).stderr).toContain(`btw: lab ${LAB} has no VM 'gamma' (its VMs: alpha beta)`);
  }, 300_000);

  test("ten VMs would cost overlays, not images: each VM disk is a qcow2 backed by the shared base volume", () => {
    const volumes = volumeNames(PREFIX);
    expect(volumes.filter((v) => v.includes("-base-"))).toHaveLength(1);
    for (const name of ["alpha", "beta"]) {
      const xml = virsh(["vol-dumpxml", `${PREFIX}-${name}.qcow2`, "--pool", PREFIX]);
      expect(xml).toMatch(/<backingStore>[\s\S]*-base-/);
    }
  });

  test("a changed group_vars file runs alpha's playbook again on the same machine (no new boot)", async () => {
    const bootId = cat("alpha", "/proc/sys/kernel/random/boot_id").stdout;
    setToken("second-token");
    const run = await workspace.deploy();
    expect(run.status).toBe(0);
    expect(run.output).toContain(`run-playbooks: alpha: running playbook ${site}`);
    expect(run.output).not.toMatch(/libvirt_domain\.\S+: (Destroying|Creating)/);
    expect(cat("alpha", "/etc/btw-playbook").stdout).toBe(`second-token alpha ${PREFIX}-alpha\nstatus: done\n`);
    expect(playbookRuns()).toBe(2);
    expect(cat("alpha", "/proc/sys/kernel/random/boot_id").stdout).toBe(bootId);
  }, 1_200_000);

  // The plan is what deploy applies: the memory change is deployed with the profile edit below (one boot less).
  test("changing one VM's memory: `cdktf diff` and the plan replace only that VM's domain", async () => {
    fs.writeFileSync(workspace.configFile, stringify(withBetaMemory()));
    const diff = await workspace.cdktf(["diff", "lab", "--skip-provider-lock"]);
    expect(diff.status).toBe(0);
    expect(diff.output).toMatch(/libvirt_domain\.vm-beta_domain_\w+ (\(vm-beta\/Default\/domain\) )?must be replaced/);
    expect(diff.output).toMatch(/memory\s+= 1024 -> 1280/);
    expect(diff.output).not.toMatch(/vm-alpha_\S+ (\(\S+\) )?(must be replaced|will be)/);
    expect((await workspace.cdktf(["synth"])).status).toBe(0);
    const changes = planChanges(workspace.stackDir()).filter((c) => c.actions.join() !== "no-op");
    expect(changes.map((c) => c.address)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^libvirt_domain\.vm-beta_domain/), expect.stringMatching(/^terraform_data\.vm-beta_cloud-init-ready/)]),
    );
    expect(changes.filter((c) => !c.address.includes("vm-beta"))).toEqual([]);
  }, 600_000);

  test("a profile edit rebuilds the image, recreates every VM that boots it (beta with its new memory), and readiness runs again before deploy ends", async () => {
    const token = crypto.randomBytes(8).toString("hex");
    // A new last step of the lab's profile: its layer alone is built (the ones before it are reused).
    fs.mkdirSync(path.join(profilesDir, "ansible-role/commands.d"), { recursive: true });
    fs.writeFileSync(path.join(profilesDir, "ansible-role/commands.d/90-profile-edit.sh"), `echo ${token} >/etc/btw-profile-edit\n`);
    const bootIds = Object.fromEntries(["alpha", "beta"].map((name) => [name, guestExec(`${PREFIX}-${name}`, "/bin/cat", ["/proc/sys/kernel/random/boot_id"]).stdout.trim()]));
    expect((await workspace.cdktf(["synth"])).status).toBe(0);
    const plan = planStack(workspace.stackDir());
    const changes = (plan.resource_changes ?? []).map((c) => ({ address: c.address, actions: c.change.actions })).filter((c) => c.actions.join() !== "no-op");
    const summary = renderPlanSummary([{ stack: "lab", plan }]);
    expect(summary).toContain("profile ansible-role changed: ansible-role/commands.d/90-profile-edit.sh (added)");
    expect(summary).toMatch(/rebuilds from layer `ansible-role\/commands\.d\/90-profile-edit\.sh` \((\d+) of \1; cached: packages, /);
    for (const name of ["alpha", "beta"]) {
      expect(summary).toContain(`the domain of vm ${name} is created again`);
      for (const resource of [`libvirt_domain.vm-${name}_domain`, `libvirt_volume.vm-${name}_disk`, `terraform_data.vm-${name}_cloud-init-ready`]) {
        expect({ resource, actions: changes.find((c) => c.address.startsWith(resource))?.actions.join() }).toEqual({ resource, actions: "delete,create" });
      }
    }
    const run = await workspace.deploy();
    expect(run.output).not.toMatch(/Error:/);
    expect(run.status).toBe(0);
    for (const name of ["alpha", "beta"]) {
      const domain = `${PREFIX}-${name}`;
      expect(run.output).toMatch(new RegExp(`vm-${name}_cloud-init-ready_\\w+ \\(vm-${name}/cloud-init-ready/Default\\): Creation complete|vm-${name}_cloud-init-ready_\\w+: Creation complete`));
      expect(guestExec(domain, "/bin/cat", ["/etc/btw-profile-edit"]).stdout.trim()).toBe(token);
      expect(guestExec(domain, "/bin/cat", ["/proc/sys/kernel/random/boot_id"]).stdout.trim()).not.toBe(bootIds[name]);
      expect(guestExec(domain, "/usr/bin/cloud-init", ["status"]).stdout).toContain("status: done");
    }
    expect(virsh(["dominfo", `${PREFIX}-beta`])).toMatch(/Max memory:\s+1310720 KiB/);
    // A new machine: alpha's playbook ran on it, once.
    expect(cat("alpha", "/etc/btw-playbook").stdout).toBe(`second-token alpha ${PREFIX}-alpha\nstatus: done\n`);
    expect(playbookRuns()).toBe(1);
  }, 2_400_000);

  // Last before destroy: the failed step stays to be run again, which the plans above must not see.
  test("a failing task fails the deploy naming the VM, the playbook, the play and the task", async () => {
    fs.writeFileSync(workspace.configFile, stringify(labWith({ playbooks: ["playbooks/site.yml", path.relative(workspace.dir, failing)], betaMemory: 1280 })));
    const run = await workspace.deploy();
    expect(run.status).not.toBe(0);
    expect(run.output).toContain(`run-playbooks: error: alpha: playbook ${failing} failed in play 'Break the VM', task 'Fail on purpose': failing on purpose`);
    expect(run.output).not.toContain(SECRET);
    // The playbooks before it ran, in order.
    expect(playbookRuns()).toBe(2);
  }, 1_200_000);

  test("destroy removes every domain, NVRAM file, volume, seed, network and pool of the lab", async () => {
    const run = await workspace.destroy();
    expect(run.status).toBe(0);
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(fs.readdirSync("/var/lib/libvirt/qemu/nvram").filter((f) => f.startsWith(PREFIX))).toEqual([]);
    expect(fs.existsSync(`/var/lib/libvirt/btw-img/${LAB}`)).toBe(false);
    expect(fs.readdirSync("/var/log/libvirt/qemu").filter((f) => f.startsWith(PREFIX))).toEqual([]);
    expect(hostLeftovers(workspace.dir, path.join(process.env.BTW_CACHE_DIR as string, "labs", LAB))).toEqual([]);
  }, 900_000);
});
