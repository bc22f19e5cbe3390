import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { ConfigError, DEFAULT_CONFIG_PATH, LoadOptions, loadConfig } from "../../lib/config/config";
import { NO_HOST, parseConfig } from "../helpers/test-config";
import { HostNetworks, parseRoutes } from "../../lib/config/host-network";
import { testLab } from "../../testkit/lab-yaml";

function problemsOf(text: string, options: LoadOptions = {}): string {
  try {
    parseConfig(text, "/labs/bad.yaml", options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error("the config was accepted");
}

describe("a lab config is validated before any stack is built", () => {
  test("the embedded default lab.yaml is valid: trixie, minimal, one VM, KVM, UEFI, NAT", () => {
    const lab = loadConfig(DEFAULT_CONFIG_PATH, { host: NO_HOST });
    expect(lab.release).toBe("trixie");
    expect(lab.image.url).toBe("https://cloud.debian.org/images/cloud/trixie/latest/debian-13-generic-amd64.tar.xz");
    expect(lab.profile).toBe("minimal");
    expect(lab.vms).toHaveLength(1);
    expect(lab.libvirt).toMatchObject({ uri: "qemu:///system", accel: "kvm", firmware: "uefi" });
    expect(lab.network.mode).toBe("nat");
  });

  test("a bookworm lab is accepted and VM defaults are applied", () => {
    const lab = parseConfig(stringify(testLab({ release: "bookworm", vms: [{ name: "a" }, { name: "b", memory: 2048, profile: "minimal" }] })), "x.yaml");
    expect(lab.release).toBe("bookworm");
    expect(lab.vms.map((vm) => [vm.name, vm.memory, vm.profile])).toEqual([
      ["a", 1024, "minimal"],
      ["b", 2048, "minimal"],
    ]);
  });

  test("the code reads the YAML's snake_case keys under camelCase names, each with its own value", () => {
    const lab = parseConfig(
      stringify(
        testLab({
          extra: {
            libvirt: { pool_path: "/srv/pools", ovmf_code: "/fw/CODE.fd", ovmf_vars: "/fw/VARS.fd" },
            users: [{ name: "admin", ssh_authorized_keys: ["ssh-ed25519 AAAAC3Nz admin@example"] }],
            baremetal: {
              output_dir: "/srv/artifacts",
              pxe: {
                interface: "br50",
                address: "10.50.0.1",
                dhcp_range: "10.50.0.100,10.50.0.200",
                http_port: 8282,
                state_dir: "/srv/pxe",
                transport: "multicast",
                multicast: { port_base: 9100, min_receivers: 3, max_wait: 45, fallback_after: 200 },
              },
              machines: [
                { name: "m1", mac: "52:54:00:00:00:01", user_data: { runcmd: ["true"] } },
                { name: "m2", mac: "52:54:00:00:00:02", transport: "http" },
              ],
            },
          },
          vms: [{ name: "a", user_data: { timezone: "UTC" } }],
        }),
      ),
      "x.yaml",
      { host: { routes: () => [], networkBridge: () => undefined } },
    );
    expect(lab.libvirt).toMatchObject({ poolPath: "/srv/pools", ovmfCode: "/fw/CODE.fd", ovmfVars: "/fw/VARS.fd" });
    expect(lab.users).toEqual([{ name: "admin", sshAuthorizedKeys: ["ssh-ed25519 AAAAC3Nz admin@example"], loginKey: false, sudo: true }]);
    expect(lab.baremetal.outputDir).toBe("/srv/artifacts");
    expect(lab.baremetal.pxe).toEqual({
      interface: "br50",
      address: "10.50.0.1",
      dhcpRange: "10.50.0.100,10.50.0.200",
      httpPort: 8282,
      stateDir: "/srv/pxe",
      multicast: { portBase: 9100, minReceivers: 3, maxWait: 45, fallbackAfter: 200 },
    });
    // The server's transport, unless the machine names its own.
    expect(lab.baremetal.machines.map((machine) => machine.transport)).toEqual(["multicast", "http"]);
    expect(lab.baremetal.machines[0].userData).toEqual({ runcmd: ["true"] });
    expect(lab.vms[0].userData).toEqual({ timezone: "UTC" });
  });

  test("profiles_dir names a profiles folder relative to the lab file; a missing one is refused, naming the key", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-profiles-dir-"));
    try {
      fs.mkdirSync(path.join(dir, "profiles", "mine"), { recursive: true });
      const lab = parseConfig(stringify(testLab({ extra: { profile: "mine", profiles_dir: "profiles" } })), path.join(dir, "lab.yaml"));
      expect(lab.profilesDir).toBe(path.join(dir, "profiles"));
      expect(lab.vms[0].profile).toBe("mine");
      const missing = problemsOf(stringify(testLab({ extra: { profiles_dir: "no-such-folder" } })));
      expect(missing).toContain("profiles_dir: folder /labs/no-such-folder does not exist");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("invalid YAML names the file, line and column", () => {
    const message = problemsOf("release: trixie\nimage: {url: [\n  vms: 1\n");
    expect(message).toContain("/labs/bad.yaml");
    expect(message).toMatch(/line \d+, column \d+: YAML error/);
  });

  test("an unknown key names its path", () => {
    const message = problemsOf(stringify(testLab({ extra: { libvirt: { uri: "qemu:///system", acel: "tcg" } } })));
    expect(message).toContain("libvirt: unknown key 'acel'");
  });

  test("a wrong type names the key path and both types", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "vm1", memory: "lots" }] })));
    expect(message).toContain("vms[0].memory: expected number, got string");
  });

  test("duplicate VM names are refused", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "web" }, { name: "db" }, { name: "web" }] })));
    expect(message).toContain("vms[2].name: duplicate VM name 'web' (also vms[0].name)");
  });

  test("a VM name that is not a valid hostname is refused", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "Web_Server!" }] })));
    expect(message).toContain("vms[0].name: must be a valid hostname");
  });

  test("an unknown accel lists the accepted values", () => {
    const message = problemsOf(stringify(testLab({ extra: { libvirt: { accel: "hvf" } } })));
    expect(message).toContain("libvirt.accel: 'hvf' is not one of 'kvm', 'tcg'");
  });

  test("an unknown profile names the profiles that exist", () => {
    const message = problemsOf(stringify(testLab({ vms: [{ name: "vm1", profile: "nosuch" }] })));
    expect(message).toMatch(/vms\[0\]\.profile: unknown profile 'nosuch' \(profiles in .*: .*minimal/);
  });

  test("a missing required key says it is required", () => {
    const lab = testLab();
    delete lab.release;
    expect(problemsOf(stringify(lab))).toContain("release: is required");
  });

  test("a missing file says how to choose another", () => {
    expect(() => loadConfig(path.join("/nonexistent", "lab.yaml"))).toThrow(/cannot read the file.*BTW_CONFIG/);
  });
});

/** A host whose `ip -4 route show` prints `routes` and whose libvirt networks have these bridges. */
function fakeHost(routes: string, bridges: Record<string, string> = {}): HostNetworks {
  return { routes: () => parseRoutes(routes), networkBridge: (_uri, name) => bridges[name] };
}

const HOST_ROUTES = `default via 192.168.1.1 dev eth0 proto dhcp src 192.168.1.20 metric 100
10.8.0.0/16 via 10.9.0.1 dev tun0
10.9.0.0/24 dev tun0 proto kernel scope link src 10.9.0.2
blackhole 172.16.0.0/12
10.50.0.0/16 dev br50 proto kernel scope link src 10.50.0.1
192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.20 metric 100
`;

const withKeys = (extra: Record<string, unknown>, vms?: Record<string, unknown>[]) => stringify(testLab({ extra, vms }));
const accepted = (text: string, options: LoadOptions = {}) => expect(() => parseConfig(text, "/labs/ok.yaml", options)).not.toThrow();

describe("paths are refused at synth when they would mislead scripts, libvirt or the engine", () => {
  test("whitespace or a control character in any path names its key", () => {
    const message = problemsOf(
      withKeys({
        libvirt: { pool_path: "/var/lib/btw img", ovmf_code: "/usr/share/OVMF/CODE\t.fd", ovmf_vars: "/usr/share/OVMF/VARS.fd\n" },
        baremetal: { output_dir: "/srv/btw\u0007artifacts", pxe: { state_dir: "/srv/pxe state" } },
      }),
    );
    for (const key of ["libvirt.pool_path", "libvirt.ovmf_code", "libvirt.ovmf_vars", "baremetal.output_dir", "baremetal.pxe.state_dir"]) {
      expect(message).toContain(`${key}: must not contain whitespace or control characters`);
    }
  });

  test("a path or libvirt URI with ${ or %{ is refused: nothing is expanded", () => {
    const message = problemsOf(withKeys({ libvirt: { pool_path: "${HOME}/pools", uri: "qemu+ssh://%{user}@host/system" } }));
    expect(message).toContain("libvirt.pool_path: must not contain '${' or '%{': nothing in the lab config is expanded");
    expect(message).toContain("libvirt.uri: must not contain '${' or '%{'");
  });

  test("a folder the lab creates things in is never / or a system folder, however it is spelled", () => {
    const message = problemsOf(withKeys({ libvirt: { pool_path: "/var/lib/" }, baremetal: { output_dir: "/srv/btw/../..", pxe: { state_dir: "//etc//" } } }));
    expect(message).toContain("libvirt.pool_path: must not be the system folder /var/lib");
    expect(message).toContain("baremetal.output_dir: must not be the system folder /");
    expect(message).toContain("baremetal.pxe.state_dir: must not be the system folder /etc");
    accepted(withKeys({ libvirt: { pool_path: "/var/lib/btw-img/" }, baremetal: { output_dir: "/srv/btw", pxe: { state_dir: "/var/lib/btw-img/pxe" } } }));
  });

  test("a profile name that is not a folder name is refused", () => {
    expect(problemsOf(withKeys({}, [{ name: "vm1", profile: "${x}" }]))).toContain("vms[0].profile: must be a profile folder name");
  });
});

describe("MACs are unique across VMs and bare-metal machines", () => {
  const PXE = { interface: "br50", address: "10.50.0.1" };

  test("two VMs with one MAC", () => {
    const message = problemsOf(withKeys({}, [{ name: "a", mac: "52:54:00:00:00:0a" }, { name: "b" }, { name: "c", mac: "52:54:00:00:00:0a" }]));
    expect(message).toContain("vms[2].mac: duplicate VM mac '52:54:00:00:00:0a' (also vms[0].mac)");
  });

  test("a machine with a VM's MAC, and two machines with one MAC", () => {
    const message = problemsOf(
      withKeys(
        {
          baremetal: {
            pxe: PXE,
            machines: [
              { name: "m1", mac: "52:54:00:00:00:0a" },
              { name: "m2", mac: "52:54:00:00:00:0b" },
              { name: "m3", mac: "52:54:00:00:00:0b" },
            ],
          },
        },
        [{ name: "vm1", mac: "52:54:00:00:00:0a" }],
      ),
    );
    expect(message).toContain("baremetal.machines[0].mac: duplicate machine mac '52:54:00:00:00:0a' (also vms[0].mac)");
    expect(message).toContain("baremetal.machines[2].mac: duplicate machine mac '52:54:00:00:00:0b' (also baremetal.machines[1].mac)");
  });
});

describe("the PXE DHCP range lies in the PXE address's subnet", () => {
  const pxe = (address: string, dhcp_range: string) => ({
    baremetal: { pxe: { interface: "br50", address, dhcp_range }, machines: [{ name: "m1", mac: "52:54:00:00:00:01" }] },
  });
  const host = { host: fakeHost(HOST_ROUTES) };

  test("an octet over 255 is refused", () => {
    expect(problemsOf(withKeys(pxe("10.50.0.1", "10.50.0.100,10.50.0.300")), host)).toContain("baremetal.pxe.dhcp_range: must be IPv4 addresses with octets <= 255");
  });

  test("on the lab network: the range must be in network.cidr", () => {
    // testLab's network: 10.213.7.0/24
    expect(problemsOf(withKeys(pxe("10.213.7.1", "10.213.7.100,10.213.8.20")), host)).toContain(
      "baremetal.pxe.dhcp_range: 10.213.8.20 is outside 10.213.7.0/24, the subnet of baremetal.pxe.address 10.213.7.1 (network.cidr)",
    );
    accepted(withKeys(pxe("10.213.7.1", "10.213.7.100,10.213.7.200")), host);
  });

  test("on a host bridge: the range must be in the subnet routed on that bridge", () => {
    expect(problemsOf(withKeys(pxe("10.50.0.1", "10.51.0.100,10.51.0.200")), host)).toContain(
      "baremetal.pxe.dhcp_range: 10.51.0.100 and 10.51.0.200 are outside 10.50.0.0/16, the subnet of baremetal.pxe.address 10.50.0.1 (routed on br50)",
    );
    accepted(withKeys(pxe("10.50.0.1", "10.50.1.100,10.50.2.200")), host);
  });

  test("the first address must not come after the last", () => {
    expect(problemsOf(withKeys(pxe("10.50.0.1", "10.50.0.200,10.50.0.100")), host)).toContain("baremetal.pxe.dhcp_range: the first address 10.50.0.200 comes after the last 10.50.0.100");
  });
});

describe("a network the lab creates must not overlap one the host already routes", () => {
  const lab = (cidr: string, extra: Record<string, unknown> = {}) => withKeys({ network: { name: "btwtest-net", mode: "nat", cidr }, ...extra });

  test("a routed subnet, a route through a gateway and a blackhole all count; the message names the key and the route", () => {
    const host = { host: fakeHost(HOST_ROUTES) };
    expect(problemsOf(lab("192.168.1.0/24"), host)).toContain(
      "network.cidr: 192.168.1.0/24 overlaps 192.168.1.0/24, which the host already routes ('192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.20 metric 100'): choose a free range",
    );
    expect(problemsOf(lab("10.8.4.0/24"), host)).toContain("network.cidr: 10.8.4.0/24 overlaps 10.8.0.0/16, which the host already routes ('10.8.0.0/16 via 10.9.0.1 dev tun0')");
    expect(problemsOf(lab("172.20.0.0/24"), host)).toContain("network.cidr: 172.20.0.0/24 overlaps 172.16.0.0/12");
    // The default route overlaps everything and says nothing.
    accepted(lab("10.77.0.0/24"), host);
  });

  test("after a deploy the lab's own network is routed on its bridge: planning again is not refused", () => {
    const deployed = `${HOST_ROUTES}10.77.0.0/24 dev virbr3 proto kernel scope link src 10.77.0.1\n`;
    accepted(lab("10.77.0.0/24"), { host: fakeHost(deployed, { "btwtest-net": "virbr3" }) });
    expect(problemsOf(lab("10.77.0.0/24"), { host: fakeHost(deployed, { "other-net": "virbr3" }) })).toContain("network.cidr: 10.77.0.0/24 overlaps 10.77.0.0/24");
  });

  test("not checked for a network the lab only attaches to, nor for a remote libvirt", () => {
    const host = { host: fakeHost(HOST_ROUTES) };
    accepted(withKeys({ network: { name: "default", create: false, cidr: "192.168.1.0/24" } }), host);
    accepted(lab("192.168.1.0/24", { libvirt: { uri: "qemu+ssh://root@kvm1/system" } }), host);
  });
});

describe("a bare-metal machine's disk is a whole disk", () => {
  const disk = (value: string) => withKeys({ baremetal: { pxe: { interface: "br50", address: "10.50.0.1" }, machines: [{ name: "m1", mac: "52:54:00:00:00:01", disk: value }] } });

  test("kernel names, /dev/disk/by-id (serial, WWN) and /dev/disk/by-path are accepted", () => {
    for (const value of [
      "/dev/sda",
      "/dev/nvme0n1",
      "/dev/vdb",
      "/dev/mmcblk0",
      "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PUNX0R123456A",
      "/dev/disk/by-id/wwn-0x5002538f4123abcd",
      "/dev/disk/by-id/nvme-eui.0025385b71b0a1f2",
      "/dev/disk/by-path/pci-0000:00:17.0-ata-1",
      "/dev/disk/by-path/pci-0000:03:00.0-nvme-1",
    ]) {
      accepted(disk(value));
    }
  });

  test("a partition is refused, naming the key and the whole disk", () => {
    for (const [partition, whole] of [
      ["/dev/sda1", "/dev/sda"],
      ["/dev/nvme0n1p2", "/dev/nvme0n1"],
      ["/dev/vda3", "/dev/vda"],
      ["/dev/mmcblk0p1", "/dev/mmcblk0"],
      ["/dev/disk/by-id/wwn-0x5002538f4123abcd-part1", "/dev/disk/by-id/wwn-0x5002538f4123abcd"],
      ["/dev/disk/by-path/pci-0000:00:17.0-ata-1-part2", "/dev/disk/by-path/pci-0000:00:17.0-ata-1"],
    ]) {
      expect(problemsOf(disk(partition))).toContain(`baremetal.machines[0].disk: ${partition} is a partition: give the whole disk (${whole})`);
    }
  });

  test("another name under /dev/disk (a file system's UUID or label) is refused", () => {
    expect(problemsOf(disk("/dev/disk/by-uuid/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab"))).toContain("baremetal.machines[0].disk: must be a whole-disk device");
  });

  test("first_boot is kexec unless set to reboot; anything else is refused naming the key", () => {
    const machine = (extra: Record<string, unknown>) => withKeys({ baremetal: { pxe: { interface: "br50", address: "10.50.0.1" }, machines: [{ name: "m1", mac: "52:54:00:00:00:01", ...extra }] } });
    expect(parseConfig(machine({}), "x.yaml").baremetal.machines[0].firstBoot).toBe("kexec");
    expect(parseConfig(machine({ first_boot: "reboot" }), "x.yaml").baremetal.machines[0].firstBoot).toBe("reboot");
    expect(problemsOf(machine({ first_boot: "warm" }))).toContain("baremetal.machines[0].first_boot: 'warm' is not one of 'kexec', 'reboot'");
  });
});

describe("state: where the engine keeps the lab's state", () => {
  const withState = (state: unknown) => stringify(testLab({ extra: { state } }));

  test("local by default; pg takes its connection string from PG_CONN_STR unless state.conn_str names one", () => {
    expect(parseConfig(stringify(testLab()), "/labs/ok.yaml").state).toEqual({ backend: "local", connStr: undefined, lockTimeout: 0 });
    const pg = parseConfig(withState({ backend: "pg", conn_str: "postgres://btw@db.example.org/btw", lock_timeout: 600 }), "/labs/ok.yaml");
    expect(pg.state).toEqual({ backend: "pg", connStr: "postgres://btw@db.example.org/btw", lockTimeout: 600 });
  });

  test("a connection string holding a password is refused, naming the key but not the password", () => {
    for (const connStr of ["postgres://btw:hunter2@db.example.org/btw", "postgresql://db.example.org/btw?user=btw&password=hunter2"]) {
      const message = problemsOf(withState({ backend: "pg", conn_str: connStr }));
      expect(message).toContain("state.conn_str: must not hold a password: give it in PGPASSWORD or ~/.pgpass, or the whole string in PG_CONN_STR");
      expect(message).not.toContain("hunter2");
    }
  });

  test("conn_str without backend pg, an unknown backend and a negative lock_timeout name their keys", () => {
    expect(problemsOf(withState({ conn_str: "postgres://db.example.org/btw" }))).toContain("state.conn_str: is only for state.backend 'pg'");
    expect(problemsOf(withState({ backend: "s3" }))).toContain("state.backend: 's3' is not one of 'local', 'pg'");
    expect(problemsOf(withState({ backend: "pg", lock_timeout: -1 }))).toContain("state.lock_timeout:");
  });
});

describe("hosts: the libvirt connections a lab's VMs run on", () => {
  test("a VM naming an unknown host, a duplicate host and the reserved name 'default' name their keys", () => {
    const lab = (hosts: unknown, vms: unknown) => stringify(testLab({ vms: vms as Record<string, unknown>[], extra: { hosts } }));
    expect(problemsOf(lab([{ name: "h2", uri: "qemu+ssh://h2/system" }], [{ name: "a", host: "h3" }]))).toContain("vms[0].host: unknown host 'h3': hosts lists 'h2'");
    expect(
      problemsOf(
        lab(
          [
            { name: "h2", uri: "qemu:///system" },
            { name: "h2", uri: "qemu:///session" },
          ],
          [{ name: "a" }],
        ),
      ),
    ).toContain("hosts[1].name: duplicate host name 'h2' (also hosts[0].name)");
    expect(problemsOf(lab([{ name: "default", uri: "qemu:///system" }], [{ name: "a" }]))).toContain("hosts[0].name: 'default' is the host of libvirt.uri");
    expect(problemsOf(lab([{ name: "h2", uri: "ssh h2" }], [{ name: "a" }]))).toContain("hosts[0].uri: must be a libvirt URI");
    expect(problemsOf(lab([{ name: "h2", uri: "qemu+ssh://h2/system?keyfile=${HOME}/k" }], [{ name: "a" }]))).toContain("hosts[0].uri: must not contain '${' or '%{'");
  });

  test("a host's network defaults to network.name-<host> with network.cidr; VMs without host run on libvirt.uri", () => {
    const config = parseConfig(stringify(testLab({ vms: [{ name: "a" }, { name: "b", host: "h2" }], extra: { hosts: [{ name: "h2", uri: "qemu+tls://h2.example.org/system" }] } })), "/labs/ok.yaml");
    expect(config.hosts.map((h) => [h.name, h.uri, h.network.name, h.network.cidr])).toEqual([
      ["default", "qemu:///system", "btwtest-net", "10.213.7.0/24"],
      ["h2", "qemu+tls://h2.example.org/system", "btwtest-net-h2", "10.213.7.0/24"],
    ]);
    expect(config.vms.map((vm) => vm.host)).toEqual(["default", "h2"]);
  });
});
