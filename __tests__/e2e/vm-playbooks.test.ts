// Ansible after boot, on Debian's real trixie image: a VM's playbooks (vms[].playbooks)
// run after readiness through its guest agent, again only when their folder changes,
// and a failing task fails the deploy naming the VM and the task. The VM boots the
// fixture profile ansible-role (over minimal, for the agent), whose role's package,
// templated file and enabled unit are checked in the running VM (one boot for both).
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../lib/config/config";
import { testLab } from "../../testkit/lab-yaml";
import { LabUnderTest } from "../../testkit/lab-test";
import { guestExec, hostLeftovers, leftovers } from "../../testkit/libvirt";

const LAB = "pbe2e";
const PREFIX = `btw-${LAB}`;
const DOMAIN = `${PREFIX}-web`;
// Stands for a secret in user-data: no deploy output may hold it (the engine shows the seed's trigger as sensitive).
const SECRET = "pb-s3cr3t-41c9";
const playbookLines = (output: string) => output.split("\n").filter((line) => /vm-web_playbooks|run-playbooks/.test(line));

describe("a VM's Ansible playbooks run after readiness through its guest agent", () => {
  const labUnderTest = new LabUnderTest(LAB, "vm-playbooks");
  const { workspace } = labUnderTest;
  const profilesDir = path.join(workspace.dir, "profiles");
  const playbooksDir = path.join(workspace.dir, "playbooks");
  const site = path.join(playbooksDir, "site.yml");
  const failing = path.join(workspace.dir, "failing", "site.yml");
  let lab: Record<string, unknown>;

  const cat = (file: string) => guestExec(DOMAIN, "/bin/cat", [file]);
  const runs = () => cat("/var/lib/btw-playbook-runs").stdout.split("\n").filter(Boolean).length;
  const writeLab = (playbooks: string[]) => {
    lab = { ...lab, vms: [{ name: "web", playbooks, user_data: { runcmd: [`echo ${SECRET} > /run/btw-secret`] } }] };
    fs.writeFileSync(workspace.configFile, stringify(lab));
  };
  const setToken = (token: string) => fs.writeFileSync(path.join(playbooksDir, "group_vars", "all.yml"), `mark_token: ${token}\n`);

  beforeAll(async () => {
    const imageBaseUrl = await labUnderTest.start();
    // The fixture profile over minimal (the guest agent), in a profiles folder of the lab's own.
    fs.cpSync(path.join(PROJECT_DIR, "profiles", "minimal"), path.join(profilesDir, "minimal"), { recursive: true });
    fs.cpSync(path.join(PROJECT_DIR, "__tests__", "fixtures", "profiles", "ansible-role"), path.join(profilesDir, "ansible-role"), { recursive: true });
    fs.writeFileSync(path.join(profilesDir, "ansible-role", "extends"), "minimal\n");
    // A playbook with a role and group_vars: it records each run and what cloud-init said when it ran.
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
        profiles_dir: profilesDir,
        libvirt: { accel: "tcg", firmware: "bios" },
        // Its one VM boots alone: emulated, two CPUs boot it in about 0.7 of the time.
        defaults: { memory: 1024, vcpus: 2, disk: 4 },
        network: { name: `${LAB}-net`, mode: "isolated", cidr: "10.213.47.0/24" },
        readiness: { timeout: 900 },
      },
    });
    writeLab(["playbooks/site.yml"]);
  }, 1_500_000);

  afterAll(() => labUnderTest.stop(), 900_000);

  test("deploy applies the playbook after cloud-init is done, with the VM as the inventory's host; nothing secret printed", async () => {
    const run = await workspace.deploy();
    expect({ status: run.status, tail: run.status === 0 ? "" : run.output.slice(-4000) }).toEqual({ status: 0, tail: "" });
    expect(run.output).not.toMatch(/Error:/);
    expect(run.output).toContain("run-playbooks: web: checking playbook");
    expect(run.output).toContain(`run-playbooks: web: running playbook ${site} on ${DOMAIN} through its guest agent`);
    expect(run.output).toMatch(/TASK \[mark : Write the mark\][\s\S]*changed: \[btw-pbe2e-web\]/);
    expect(playbookLines(run.output).length).toBeGreaterThan(5);
    expect(run.output).not.toContain(SECRET);
    expect(cat("/etc/btw-playbook").stdout).toBe(`first-token web ${DOMAIN}\nstatus: done\n`);
    expect(runs()).toBe(1);
  }, 2_400_000);

  test("the fixture profile's role left its package, templated file and enabled unit, active in the booted VM", () => {
    expect(guestExec(DOMAIN, "/usr/bin/dpkg-query", ["-W", "-f", "${Status}", "tree"]).stdout).toBe("install ok installed");
    expect(guestExec(DOMAIN, "/usr/bin/tree", ["-d", "/etc/ssh"]).exitcode).toBe(0);
    expect(cat("/etc/btw-hello.conf").stdout).toBe("# Ansible managed\ngreeting = hello from group_vars\nport = 4242\nprofile = ansible-role\n");
    expect(guestExec(DOMAIN, "/usr/bin/systemctl", ["is-enabled", "btw-hello.service"]).stdout.trim()).toBe("enabled");
    expect(guestExec(DOMAIN, "/usr/bin/systemctl", ["is-active", "btw-hello.service"]).stdout.trim()).toBe("active");
    expect(cat("/var/lib/btw-hello-started").exitcode).toBe(0);
  }, 300_000);

  test("a re-deploy with the same playbook does not run it again", async () => {
    const run = await workspace.deploy();
    expect(run.status).toBe(0);
    expect(run.output).not.toContain("run-playbooks:");
    expect(runs()).toBe(1);
  }, 1_200_000);

  test("a changed group_vars file runs the playbook again on the same machine (no new boot)", async () => {
    const bootId = cat("/proc/sys/kernel/random/boot_id").stdout;
    setToken("second-token");
    const run = await workspace.deploy();
    expect(run.status).toBe(0);
    expect(run.output).toContain(`run-playbooks: web: running playbook ${site}`);
    expect(run.output).not.toMatch(/libvirt_domain\.\S+: (Destroying|Creating)/);
    expect(cat("/etc/btw-playbook").stdout).toBe(`second-token web ${DOMAIN}\nstatus: done\n`);
    expect(runs()).toBe(2);
    expect(cat("/proc/sys/kernel/random/boot_id").stdout).toBe(bootId);
  }, 1_200_000);

  test("a failing task fails the deploy naming the VM, the playbook, the play and the task", async () => {
    writeLab(["playbooks/site.yml", path.relative(workspace.dir, failing)]);
    const run = await workspace.deploy();
    expect(run.status).not.toBe(0);
    expect(run.output).toContain(`run-playbooks: error: web: playbook ${failing} failed in play 'Break the VM', task 'Fail on purpose': failing on purpose`);
    expect(run.output).not.toContain(SECRET);
    // The playbooks before it ran, in order.
    expect(runs()).toBe(3);
  }, 1_200_000);

  test("destroy leaves nothing of the lab", async () => {
    const run = await workspace.destroy();
    expect(run.status).toBe(0);
    expect(leftovers(PREFIX)).toEqual([]);
    expect(leftovers(`${LAB}-net`)).toEqual([]);
    expect(hostLeftovers(workspace.dir)).toEqual([]);
  }, 900_000);
});
