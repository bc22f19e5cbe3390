// Every shipped profile that builds offline here, on Debian's real generic
// images of both releases: the desktops build and hold their packages (on Debian
// 13 with the Secure Boot check, which fails on anything unsigned), metal builds
// on Debian 12 too (on 13: two-labs-at-once.test.ts), and proxmox stops at its
// offline check (Proxmox's repository is not reachable from this machine) naming
// what is at fault, on both (built against a stand-in: customize-apt-repository.test.ts). slim drops
// documentation, manual pages and translations and keeps the copyright files.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { readProfile } from "../../lib/config/profile";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { installedPackages, runScript, runScriptAsync, withImageRoot } from "../../testkit/image";
import { hostLeftovers } from "../../testkit/libvirt";

const PROFILES = path.join(PROJECT_DIR, "profiles");
// The labs' layer store (customize-image.sh's default for their images in $BTW_CACHE_DIR/images): a warm host builds
// only layers whose key is new. Still the shipped profiles: a key covers the base, the release, the build scripts, the
// chain's packages and repositories and each step's files, playbook or script; the Secure Boot check and cleaning run on
// every build. Each release's layers have their own keys; refs/PROFILE keeps its last three builds' (both releases').
const LAYER_STORE = path.join(process.env.BTW_CACHE_DIR as string, "images", "layers");
const RELEASES = [
  { release: "trixie" as const, profiles: ["graphical", "btwd"] },
  { release: "bookworm" as const, profiles: ["metal", "graphical", "btwd"] },
];

describe.each(RELEASES)("shipped profiles on Debian's real $release image", ({ release, profiles }) => {
  let work: string;
  let base: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), `btw-profiles-${release}-`));
    base = acquireFixtureBase(release, work);
  }, 1_800_000);

  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(hostLeftovers(work, LAYER_STORE)).toEqual([]);
  });

  // Built at the same time (as two labs' images may be): each build has its own work folder and /dev.
  // Debian 13's with the Secure Boot check (--secure-boot): nothing unsigned in them.
  if (profiles.length > 0)
    test(`${profiles.join(", ")} build at once, each holding every package of its chain`, async () => {
      const outputs = profiles.map((profile) => path.join(work, `${profile}.qcow2`));
      const runs = await Promise.all(
        profiles.map((profile, i) =>
          runScriptAsync("customize-image.sh", [
            ...customizeArgs(readProfile(PROFILES, profile, release), release, base, outputs[i], { secureBoot: release === "trixie" }),
            "--layer-store",
            LAYER_STORE,
          ]),
        ),
      );
      profiles.forEach((profile, i) => {
        expect({ profile, status: runs[i].status, tail: runs[i].status === 0 ? "" : runs[i].stderr.slice(-3000) }).toEqual({ profile, status: 0, tail: "" });
        const wanted = readProfile(PROFILES, profile).packages.map((p) => p.split(/[=/]/)[0]);
        withImageRoot(outputs[i], (root) => {
          expect(fs.readFileSync(path.join(root, "etc/os-release"), "utf8")).toMatch(new RegExp(`^VERSION_CODENAME=${release}$`, "m"));
          const installed = installedPackages(root);
          expect({ profile, missing: wanted.filter((name) => !installed.has(name)) }).toEqual({ profile, missing: [] });
          expect(fs.readdirSync(path.join(root, "dev"))).toEqual([]);
          if (profile !== "metal") expect(fs.readlinkSync(path.join(root, "etc/systemd/system/default.target"))).toMatch(/graphical\.target$/);
        });
        fs.rmSync(outputs[i]);
      });
    }, 2_400_000);

  test("proxmox stops before changing anything, naming why it cannot build here", () => {
    // Built against a stand-in of Proxmox's repository: customize-apt-repository.test.ts.
    const output = path.join(work, "proxmox.qcow2");
    const run = runScript("customize-image.sh", customizeArgs(readProfile(PROFILES, "proxmox", release), release, base, output, { secureBoot: false }));
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`profile proxmox: apt-sources.d/${release}/pve-install-repo.sources: repository http://download.proxmox.com/debian/pve suite ${release} is unreachable`);
    expect(fs.existsSync(output)).toBe(false);
  }, 600_000);
});

describe("slim on Debian's real trixie image", () => {
  let work: string;
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test("leaves out documentation, manual pages and translations, keeps every copyright file and the filter for later installs", () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-profiles-slim-"));
    const base = acquireFixtureBase("trixie", work);
    const output = path.join(work, "slim.qcow2");
    const run = runScript("customize-image.sh", customizeArgs(readProfile(PROFILES, "slim", "trixie"), "trixie", base, output, { secureBoot: false }));
    expect({ status: run.status, tail: run.status === 0 ? "" : run.stderr.slice(-3000) }).toEqual({ status: 0, tail: "" });
    const removed = Number(/slim: removed (\d+) MiB/.exec(run.stderr)?.[1]);
    expect(removed).toBeGreaterThan(50);
    withImageRoot(output, (root) => {
      const share = path.join(root, "usr/share");
      const files = (dir: string): string[] =>
        fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)])) : [];
      const docs = files(path.join(share, "doc"));
      expect(docs.length).toBeGreaterThan(100);
      expect(docs.filter((file) => path.basename(file) !== "copyright")).toEqual([]);
      expect(files(path.join(share, "man"))).toEqual([]);
      expect(files(path.join(share, "locale")).map((file) => path.relative(share, file))).toEqual(["locale/locale.alias"]);
      // Every installed package still has its copyright file.
      const installed = [...installedPackages(root)].filter((name) => fs.existsSync(path.join(share, "doc", name)));
      expect(installed.filter((name) => !fs.existsSync(path.join(share, "doc", name, "copyright")))).toEqual([]);
      expect(fs.readFileSync(path.join(root, "etc/dpkg/dpkg.cfg.d/btw-slim"), "utf8")).toMatch(/^path-exclude=\/usr\/share\/doc\/\*$/m);
    });
    expect(hostLeftovers(work)).toEqual([]);
  }, 1_200_000);
});
