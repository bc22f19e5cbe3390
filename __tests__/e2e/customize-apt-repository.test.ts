// Third-party apt repositories for real: signed repositories built with Debian's
// tools and a throwaway key (testkit/apt-repo.ts), served on 127.0.0.1, and
// profiles built against them on Debian's real images, so apt-sources.d,
// Signed-By and the signature check run end to end. The shipped proxmox profile
// (its own files, unchanged) builds against a stand-in with Proxmox's layout
// (dists/trixie|bookworm/pve-no-subscription) through --apt-mirror, with the
// stand-in's key placed where its README says Proxmox's goes; proxmox-btwd
// holds both parents' packages.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { readProfile } from "../../lib/config/profile";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { buildRepository, proxmoxStandIns, throwawayKey, ThrowawayKey } from "../../testkit/apt-repo";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { FileServer, serveDirectory } from "../../testkit/http-server";
import { installedPackages, runScript, withImageRoot } from "../../testkit/image";
import { hostLeftovers } from "../../testkit/libvirt";

const PROFILES = path.join(PROJECT_DIR, "profiles");
const PROXMOX_URI = "http://download.proxmox.com/debian/pve";
const PROXMOX_KEYRING = { trixie: "/usr/share/keyrings/proxmox-archive-keyring.gpg", bookworm: "/etc/apt/keyrings/proxmox-release-bookworm.gpg" };

function writeFiles(dir: string, files: Record<string, string | Buffer>): void {
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
}

/** A layer holding only a keyring in files/, appended to a shipped profile's layers: the key a user would place there. */
function keyLayer(work: string, keyPath: string, key: ThrowawayKey): string {
  const layer = path.join(work, "stand-in-key");
  fs.rmSync(layer, { recursive: true, force: true });
  writeFiles(layer, { [`files${keyPath}`]: fs.readFileSync(key.keyring) });
  return layer;
}

/** Build args for a shipped profile with the stand-in's key layer and its URIs fetched from the stand-in. */
function proxmoxArgs(profile: string, release: "trixie" | "bookworm", base: string, output: string, layer: string, mirror: string): string[] {
  return customizeArgs(readProfile(PROFILES, profile, release), release, base, output, { secureBoot: false }, { extraLayers: [layer], aptMirrors: { [PROXMOX_URI]: mirror } });
}

describe("third-party apt repositories on Debian's real images", () => {
  let work: string;
  let served: string;
  let server: FileServer;
  const keys: ThrowawayKey[] = [];
  const bases: Partial<Record<"trixie" | "bookworm", string>> = {};
  const base = (release: "trixie" | "bookworm") => (bases[release] ??= acquireFixtureBase(release, fs.mkdtempSync(path.join(work, `${release}-`))));
  let good: ThrowawayKey;
  let other: ThrowawayKey;

  beforeAll(async () => {
    // Short: gpg-agent's socket lives under each key's folder.
    work = fs.mkdtempSync(path.join(os.tmpdir(), "prof-repo-"));
    served = path.join(work, "served");
    good = throwawayKey(fs.mkdtempSync(path.join(work, "k")), "btw-good");
    other = throwawayKey(fs.mkdtempSync(path.join(work, "k")), "btw-other");
    keys.push(good, other);
    const hello = [{ name: "btw-hello", version: "1.0-1", files: { "/usr/share/btw-hello/greeting": "hello from a signed repository\n" } }];
    buildRepository(served, { root: "local", suite: "stable", component: "main" }, hello, good);
    buildRepository(served, { root: "foreign", suite: "stable", component: "main" }, hello, other);
    buildRepository(served, { root: "unsigned", suite: "stable", component: "main" }, hello);
    for (const release of ["trixie", "bookworm"] as const) {
      buildRepository(served, { root: "pve", suite: release, component: "pve-no-subscription" }, proxmoxStandIns(release), good);
    }
    // Another mirror of the same repository.
    buildRepository(served, { root: "pve-again", suite: "trixie", component: "pve-no-subscription" }, proxmoxStandIns("trixie"), good);
    server = await serveDirectory(served);
  }, 600_000);

  afterAll(async () => {
    await server?.close();
    for (const key of keys) key.release();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work)).toEqual([]);
  });

  /** A profile of its own (no parent) installing btw-hello from repository ROOT, trusting KEY. */
  function localProfile(root: string, key: ThrowawayKey): { profilesDir: string; sources: string } {
    const profilesDir = fs.mkdtempSync(path.join(work, "profiles-"));
    const sources = `Types: deb\nURIs: ${server.baseUrl}/${root}\nSuites: stable\nComponents: main\nSigned-By: /etc/apt/keyrings/btw-local.gpg\n`;
    writeFiles(path.join(profilesDir, "local"), {
      "apt-sources.d/local.sources": sources,
      "files/etc/apt/keyrings/btw-local.gpg": fs.readFileSync(key.keyring),
      "install.d/local.list": "btw-hello\n",
    });
    return { profilesDir, sources };
  }

  test("a profile installs a package from a local signed repository: its source and keyring stay in the image", () => {
    const { profilesDir, sources } = localProfile("local", good);
    const output = path.join(work, "local.qcow2");
    const run = runScript("customize-image.sh", customizeArgs(readProfile(profilesDir, "local", "trixie"), "trixie", base("trixie"), output, { secureBoot: false }));
    expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    expect(run.stderr).toContain(`repository ${server.baseUrl}/local stable: Release signed by a key of /etc/apt/keyrings/btw-local.gpg`);
    // apt in the chroot fetched the signed index and the package from the server.
    const fetched = server
      .requests()
      .filter((r) => r.status === 200)
      .map((r) => r.path);
    expect(fetched).toEqual(expect.arrayContaining(["/local/dists/stable/InRelease", "/local/pool/stable/main/btw-hello_1.0-1_all.deb"]));
    withImageRoot(output, (root) => {
      expect(installedPackages(root).has("btw-hello")).toBe(true);
      expect(fs.readFileSync(path.join(root, "usr/share/btw-hello/greeting"), "utf8")).toBe("hello from a signed repository\n");
      expect(fs.readFileSync(path.join(root, "etc/apt/sources.list.d/local.sources"), "utf8")).toBe(sources);
      expect(fs.readFileSync(path.join(root, "etc/apt/keyrings/btw-local.gpg"))).toEqual(fs.readFileSync(good.keyring));
    });
    fs.rmSync(output);
  }, 1_200_000);

  test("a repository signed by another key, or not signed, is refused before the image changes, naming the source file", () => {
    for (const [root, why] of [
      ["foreign", "is not signed by a key of its Signed-By keyring /etc/apt/keyrings/btw-local.gpg (gpgv: "],
      ["unsigned", "has no signed Release (neither "],
    ]) {
      const { profilesDir } = localProfile(root, good);
      const output = path.join(work, `${root}.qcow2`);
      const run = runScript("customize-image.sh", customizeArgs(readProfile(profilesDir, "local", "trixie"), "trixie", base("trixie"), output, { secureBoot: false }));
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`error: profile local: apt-sources.d/local.sources: repository ${server.baseUrl}/${root} suite stable ${why}`);
      expect(run.stderr).not.toMatch(/apt-get update|installing:/);
      expect(fs.existsSync(output)).toBe(false);
      expect(fs.existsSync(`${output}.work`)).toBe(false);
    }
  }, 600_000);

  test("proxmox with firmware uefi-secure is refused before anything is read, saying why", () => {
    const output = path.join(work, "pve-secure.qcow2");
    const run = runScript("customize-image.sh", customizeArgs(readProfile(PROFILES, "proxmox", "trixie"), "trixie", path.join(work, "no-such-base.qcow2"), output, { secureBoot: true }));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/error: profile proxmox cannot boot with Secure Boot enforced \(Proxmox's kernel is signed with Proxmox's key, .*\); build without --secure-boot/);
    expect(fs.existsSync(output)).toBe(false);
  });

  // The stand-ins are packages of the test's own (testkit/apt-repo.ts): what this proves is the repository
  // mechanism (the release's source file, its suite fetched through --apt-mirror and trusted through the keyring,
  // its packages installed) and what the profile's own steps compute from the result, not Proxmox VE itself.
  describe.each(["trixie" as const, "bookworm" as const])("proxmox on %s against a stand-in of Proxmox's repository", (release) => {
    test("installs from the release's suite through the mirror; the profile takes out Debian's kernel, os-prober and the enterprise repository, and the image keeps Proxmox's URI", () => {
      const standIns = proxmoxStandIns(release);
      const standIn = (name: string) => standIns.find((p) => p.name === name)!;
      const output = path.join(work, `proxmox-${release}.qcow2`);
      const layer = keyLayer(work, PROXMOX_KEYRING[release], good);
      const run = runScript("customize-image.sh", proxmoxArgs("proxmox", release, base(release), output, layer, `${server.baseUrl}/pve`));
      expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-4000) }).toEqual({ status: 0, tail: "" });
      expect(run.stderr).toContain(`checking repository ${PROXMOX_URI} ${release} (proxmox: apt-sources.d/${release}/pve-install-repo.sources) through --apt-mirror ${server.baseUrl}/pve`);
      expect(server.requests().map((r) => r.path)).toContain(`/pve/dists/${release}/pve-no-subscription/binary-amd64/Packages.gz`);
      // 20-no-debian-kernel.sh names what it found to remove: Debian's kernels the image had, and os-prober.
      const removed = /proxmox: removing (.+?)\(keeping /.exec(run.stderr)?.[1].trim().split(" ") ?? [];
      expect(removed.filter((name) => /^linux-image-/.test(name)).length).toBeGreaterThan(0);
      withImageRoot(output, (root) => {
        const installed = installedPackages(root);
        // The stand-in suite of this release, not the other's: its proxmox-ve, with the kernel its proxmox-default-kernel depends on.
        const kernel = standIn("proxmox-default-kernel").depends as string;
        const wanted = [...readProfile(PROFILES, "proxmox", release).packages, kernel, "pve-manager"];
        expect(wanted.filter((name) => !installed.has(name))).toEqual([]);
        const version = standIn("proxmox-ve").version.replace(/\./g, "\\.");
        expect(fs.readFileSync(path.join(root, "var/lib/dpkg/status"), "utf8")).toMatch(new RegExp(`Package: proxmox-ve\\nStatus: install ok installed\\n(?:.+\\n)*?Version: ${version}\\n`));
        // What the profile's commands.d computed: nothing it named is left, nor any other Debian kernel, and
        // every kernel left in /boot is one a Proxmox kernel package installed (dpkg's own file lists).
        expect([...installed].filter((name) => removed.includes(name) || /^linux-image-|^os-prober$/.test(name))).toEqual([]);
        const owned = fs
          .readdirSync(path.join(root, "var/lib/dpkg/info"))
          .filter((file) => /^proxmox-kernel-.*\.list$/.test(file))
          .flatMap((file) => fs.readFileSync(path.join(root, "var/lib/dpkg/info", file), "utf8").split("\n"));
        const kernels = fs.readdirSync(path.join(root, "boot")).filter((file) => file.startsWith("vmlinuz-"));
        expect(kernels.length).toBeGreaterThan(0);
        expect(kernels.filter((file) => !owned.includes(`/boot/${file}`))).toEqual([]);
        const sources = path.join(root, "etc/apt/sources.list.d");
        expect(fs.readFileSync(path.join(sources, "pve-install-repo.sources"), "utf8")).toBe(fs.readFileSync(path.join(PROFILES, `proxmox/apt-sources.d/${release}/pve-install-repo.sources`), "utf8"));
        // pve-manager's enterprise repository (a conffile of the stand-in) was taken out by 10-no-enterprise-repo.sh.
        const enterprise = standIn("pve-manager").conffiles ?? [];
        expect(enterprise.length).toBeGreaterThan(0);
        expect(run.stderr).toContain(`proxmox: removed ${enterprise[0]}`);
        expect(enterprise.filter((file) => fs.existsSync(path.join(root, file)))).toEqual([]);
        expect(fs.readFileSync(path.join(root, PROXMOX_KEYRING[release]))).toEqual(fs.readFileSync(good.keyring));
        const apt = fs
          .readdirSync(sources)
          .map((file) => fs.readFileSync(path.join(sources, file), "utf8"))
          .join("\n");
        expect(apt).not.toContain("127.0.0.1");
      });
      fs.rmSync(output);
    }, 1_800_000);
  });

  test("another --apt-mirror builds the packages layer again, and no cached layer keeps a mirror's URI", () => {
    const output = path.join(work, "proxmox-mirrors.qcow2");
    const layer = keyLayer(work, PROXMOX_KEYRING.trixie, good);
    for (const mirror of [`${server.baseUrl}/pve`, `${server.baseUrl}/pve-again`]) {
      const run = runScript("customize-image.sh", proxmoxArgs("proxmox", "trixie", base("trixie"), output, layer, mirror));
      expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-4000) }).toEqual({ status: 0, tail: "" });
      if (mirror.endsWith("/pve-again")) expect(run.stderr).toMatch(/layer 1\/\d+ packages: building/);
    }
    // The layers live beside the output (customize-image.sh's default store); a packages layer holds the repositories as the profile wrote them.
    const store = path.join(work, "layers");
    const packagesLayers = fs.readdirSync(store).filter((file) => file.endsWith(".step") && fs.readFileSync(path.join(store, file), "utf8").trim() === "packages");
    const pveSources = packagesLayers.flatMap((step) =>
      withImageRoot(path.join(store, step.replace(/\.step$/, ".qcow2")), (root) => {
        const file = path.join(root, "etc/apt/sources.list.d/pve-install-repo.sources");
        return fs.existsSync(file) ? [fs.readFileSync(file, "utf8")] : [];
      }),
    );
    expect(pveSources.length).toBeGreaterThanOrEqual(2);
    const own = ["trixie", "bookworm"].map((release) => fs.readFileSync(path.join(PROFILES, `proxmox/apt-sources.d/${release}/pve-install-repo.sources`), "utf8"));
    expect(pveSources.filter((text) => !own.includes(text))).toEqual([]);
    fs.rmSync(output);
  }, 1_800_000);

  test("proxmox-btwd holds both parents' packages: Proxmox VE and the Sway desktop", () => {
    const output = path.join(work, "proxmox-btwd.qcow2");
    const layer = keyLayer(work, PROXMOX_KEYRING.trixie, good);
    const run = runScript("customize-image.sh", proxmoxArgs("proxmox-btwd", "trixie", base("trixie"), output, layer, `${server.baseUrl}/pve`));
    expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-4000) }).toEqual({ status: 0, tail: "" });
    expect(run.stderr).toContain("layers: minimal -> proxmox -> btwd -> proxmox-btwd -> stand-in-key");
    withImageRoot(output, (root) => {
      const installed = installedPackages(root);
      for (const parent of ["proxmox", "btwd"]) {
        const wanted = readProfile(PROFILES, parent, "trixie").packages;
        expect({ parent, missing: wanted.filter((name) => !installed.has(name)) }).toEqual({ parent, missing: [] });
      }
      expect([...installed].filter((name) => /^linux-image-/.test(name))).toEqual([]);
      expect(fs.readlinkSync(path.join(root, "etc/systemd/system/default.target"))).toMatch(/graphical\.target$/);
    });
    fs.rmSync(output);
  }, 2_400_000);
});
