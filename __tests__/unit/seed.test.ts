// Rendering a machine's cloud-init NoCloud data from the lab config.
import { parse, stringify } from "yaml";
import { parseConfig } from "../helpers/test-config";
import { consoleHostKeys, knownHosts } from "../../lib/cli/ssh";
import { mergeCloudConfig, renderSeed } from "../../lib/config/seed";
import { testLab } from "../../testkit/lab-yaml";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtwImgTestKeyOnlyForTests admin@example";

function seedFor(vm: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const lab = parseConfig(stringify(testLab({ vms: [vm], extra })), "t.yaml");
  return renderSeed(lab, lab.vms[0]);
}

describe("cloud-init seed rendering", () => {
  test("user-data sets the hostname, users with SSH keys, no passwords, and leaves packages to the profile", () => {
    const seed = seedFor({ name: "web1" }, { users: [{ name: "admin", ssh_authorized_keys: [KEY] }] });
    expect(seed.userData.startsWith("#cloud-config\n")).toBe(true);
    const userData = parse(seed.userData);
    expect(userData).toMatchObject({ hostname: "web1", package_update: false, package_upgrade: false, ssh_pwauth: false });
    expect(userData.users).toEqual([expect.objectContaining({ name: "admin", lock_passwd: true, ssh_authorized_keys: [KEY], sudo: "ALL=(ALL) NOPASSWD:ALL" })]);
    expect(seed.userData).not.toMatch(/(^|\s)(passwd|hashed_passwd|plain_text_passwd):|chpasswd/m);
  });

  test("a user without keys of its own gets the project's login key; one with keys gets only those", () => {
    const LOGIN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtwImgProjectLoginKeyOnlyForTests btw-img@host";
    const text = stringify(testLab({ extra: { users: [{ name: "debian" }, { name: "admin", ssh_authorized_keys: [KEY] }] } }));
    const lab = parseConfig(text, "t.yaml", { loginKey: LOGIN });
    expect(lab.users).toEqual([
      expect.objectContaining({ name: "debian", sshAuthorizedKeys: [LOGIN], loginKey: true }),
      expect.objectContaining({ name: "admin", sshAuthorizedKeys: [KEY], loginKey: false }),
    ]);
    const users = parse(renderSeed(lab, lab.vms[0]).userData).users;
    expect(users.map((user: { ssh_authorized_keys: string[] }) => user.ssh_authorized_keys)).toEqual([[LOGIN], [KEY]]);
    // Without a login key (setup not run), a user without keys gets none.
    expect(parseConfig(text, "t.yaml").users[0]).toMatchObject({ sshAuthorizedKeys: [], loginKey: false });
  });

  test("the VM's own user_data is merged: scalars override, its users are appended to the lab's", () => {
    const userData = parse(
      seedFor(
        { name: "web1", user_data: { package_update: true, runcmd: ["echo hi"], timezone: "Europe/Berlin", users: [{ name: "deploy", lock_passwd: true }] } },
        { users: [{ name: "admin", ssh_authorized_keys: [KEY] }] },
      ).userData,
    );
    expect(userData).toMatchObject({ package_update: true, runcmd: ["echo hi"], timezone: "Europe/Berlin", hostname: "web1" });
    expect(userData.users.map((user: { name: string }) => user.name)).toEqual(["admin", "deploy"]);
    expect(userData.users[0]).toMatchObject({ name: "admin", ssh_authorized_keys: [KEY], sudo: "ALL=(ALL) NOPASSWD:ALL" });
  });

  // Our base has no runcmd today; each list that adds up is checked on a base that has one.
  test.each(["runcmd", "bootcmd", "write_files", "packages", "users", "ssh_authorized_keys"])("a %s list in user_data is appended to the base's, not put in its place", (key) => {
    const merged = mergeCloudConfig({ [key]: ["from the base"], hostname: "base" }, { [key]: ["from the VM"], hostname: "vm" });
    expect(merged).toEqual({ [key]: ["from the base", "from the VM"], hostname: "vm" });
  });

  test("meta-data names the instance and host; a changed seed gets a new instance-id", () => {
    const first = parse(seedFor({ name: "db" }).metaData);
    expect(first["local-hostname"]).toBe("db");
    expect(first["instance-id"]).toMatch(/^btw-btwtest-db-[0-9a-f]{12}$/);
    const changed = parse(seedFor({ name: "db", user_data: { runcmd: ["true"] } }).metaData);
    expect(changed["instance-id"]).not.toBe(first["instance-id"]);
  });

  test("network-config asks for DHCP on the first ethernet whatever its name", () => {
    const network = parse(seedFor({ name: "db" }).networkConfig);
    expect(network).toEqual({ version: 2, ethernets: { primary: { match: { name: "e*" }, dhcp4: true, dhcp6: false } } });
  });
});

describe("the VM's host keys from its console (btw ssh)", () => {
  test("the last block cloud-init printed, its key lines only; none when there is none", () => {
    const block = (keys: string[]) => ["-----BEGIN SSH HOST KEY KEYS-----", ...keys, "-----END SSH HOST KEY KEYS-----"].join("\r\n");
    const text = [
      "[   12.3] cloud-init[612]: Cloud-init v. 24.1 running 'modules:final'",
      block(["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYOLD= root@old"]),
      "ci-info: no authorized SSH keys fingerprints found for user debian.",
      block(["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYNEW= root@debian1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW root@debian1", "not a key"]),
      "debian1 login:",
    ].join("\r\n");
    expect(consoleHostKeys(text)).toEqual(["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYNEW=", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW"]);
    expect(knownHosts("192.168.150.10", consoleHostKeys(text))).toBe(
      "192.168.150.10 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYNEW=\n192.168.150.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW\n",
    );
    expect(consoleHostKeys("debian1 login:")).toEqual([]);
    expect(consoleHostKeys("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA")).toEqual([]);
  });
});
