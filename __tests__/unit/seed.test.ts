// Rendering a machine's cloud-init NoCloud data from the lab config.
import { parse, stringify } from "yaml";
import { parseConfig } from "../helpers/test-config";
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
