// The layer plan (lib/image/layer-plan.ts) is the one owner of the customization's
// steps and keys: customize-image.sh builds what it is given. A change in one step
// must change its key and every key after it, and no key before it.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { baseFileKey, layerPlan, LayerPlanInput } from "../../lib/image/layer-plan";
import { customizeArgs } from "../../lib/constructs/customized-image";
import { readProfile } from "../../lib/config/profile";

describe("the layer plan", () => {
  let dir: string;
  let input: LayerPlanInput;
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  };
  /** The index of the first step whose key differs from BEFORE's (-1: none). */
  const firstChanged = (before: string[], after: string[]) => after.findIndex((key, i) => key !== before[i]);
  const keys = (changes: Partial<LayerPlanInput> = {}) => layerPlan({ ...input, ...changes }).map((step) => step.key);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lp-unit-"));
    write("base/install.d/base.list", "curl\n");
    write("base/apt-sources.d/trixie/extra.sources", "Types: deb\nURIs: http://repo.example/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/extra.gpg\n");
    write("base/apt-sources.d/bookworm/extra.sources", "Types: deb\nURIs: http://repo.example/debian\nSuites: bookworm\nComponents: main\n");
    write("base/files/usr/share/keyrings/extra.gpg", "key one\n");
    write("web/files/etc/web.conf", "x\n");
    write("web/ansible/playbook.yml", "- hosts: all\n  tasks: []\n");
    write("web/commands.d/20-b.sh", "true\n");
    write("web/commands.d/10-a.sh", "true\n");
    input = { baseKey: "image abc", release: "trixie", layers: [path.join(dir, "base"), path.join(dir, "web")], packages: ["curl"] };
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("steps in build order: the packages, files/ of each layer, playbooks, then each commands.d script; every key a sha256", () => {
    const plan = layerPlan(input);
    expect(plan.map((step) => step.name)).toEqual(["packages", "base/files", "web/files", "web/ansible", "web/commands.d/10-a.sh", "web/commands.d/20-b.sh"]);
    for (const step of plan) expect(step.key).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(plan.map((step) => step.key)).size).toBe(plan.length);
    // The same input plans the same keys.
    expect(keys()).toEqual(plan.map((step) => step.key));
  });

  test("a change rebuilds from its step on: a script, a file's content or mode, a keyring, a package, a mirror", () => {
    const before = keys();
    write("web/commands.d/20-b.sh", "false\n");
    expect(firstChanged(before, keys())).toBe(5);
    write("web/commands.d/20-b.sh", "true\n");
    expect(keys()).toEqual(before);

    fs.chmodSync(path.join(dir, "web/files/etc/web.conf"), 0o755);
    expect(firstChanged(before, keys())).toBe(2);
    fs.chmodSync(path.join(dir, "web/files/etc/web.conf"), 0o644);
    // Group and other write bits are dropped on the way into the image: no rebuild.
    fs.chmodSync(path.join(dir, "web/files/etc/web.conf"), 0o666);
    expect(keys()).toEqual(before);
    fs.chmodSync(path.join(dir, "web/files/etc/web.conf"), 0o644);

    // The keyring a trixie repository is signed with belongs to the packages step.
    write("base/files/usr/share/keyrings/extra.gpg", "key two\n");
    expect(firstChanged(before, keys())).toBe(0);
    write("base/files/usr/share/keyrings/extra.gpg", "key one\n");

    expect(firstChanged(before, keys({ packages: ["curl", "jq"] }))).toBe(0);
    expect(firstChanged(before, keys({ aptMirrors: { "http://repo.example/debian": "http://mirror.example/debian" } }))).toBe(0);
    expect(firstChanged(before, keys({ baseKey: "image def" }))).toBe(0);
    expect(keys()).toEqual(before);
  });

  test("another release's repositories change nothing; its own do", () => {
    const before = keys();
    write("base/apt-sources.d/bookworm/extra.sources", "Types: deb\nURIs: http://repo.example/debian\nSuites: bookworm-backports\nComponents: main\n");
    expect(keys()).toEqual(before);
    expect(firstChanged(before, keys({ release: "bookworm" }))).toBe(0);
  });

  test("customizeArgs hands the script every step as --step 'KEY NAME', in order, keyed by the base file when no sha512 names it", () => {
    const base = path.join(dir, "base.raw");
    fs.writeFileSync(base, "raw");
    const profiles = path.join(dir, "profiles");
    fs.mkdirSync(profiles);
    fs.cpSync(path.join(dir, "web"), path.join(profiles, "web"), { recursive: true });
    const profile = readProfile(profiles, "web", "trixie");
    const args = customizeArgs(profile, "trixie", base, path.join(dir, "out.qcow2"), { secureBoot: false });
    const steps = args.filter((_, i) => args[i - 1] === "--step");
    const plan = layerPlan({ baseKey: baseFileKey(base), release: "trixie", layers: profile.layers, packages: profile.packages });
    expect(steps).toEqual(plan.map((step) => `${step.key} ${step.name}`));
    expect(steps.map((step) => step.split(" ")[1])).toEqual(["web/files", "web/ansible", "web/commands.d/10-a.sh", "web/commands.d/20-b.sh"]);
    // A new file at the base's path (the cache wrote it again) is another base.
    fs.writeFileSync(`${base}.new`, "raw");
    fs.renameSync(`${base}.new`, base);
    expect(customizeArgs(profile, "trixie", base, path.join(dir, "out.qcow2"), { secureBoot: false }).filter((_, i, all) => all[i - 1] === "--step")).not.toEqual(steps);
    // A base the acquire step linked (its sha512 beside the link) is named as the stacks name it: they share layers.
    const sha512 = "ab".repeat(64);
    fs.writeFileSync(`${base}.json`, JSON.stringify({ sha512, url: "file:///x", checksums: "file:///y" }));
    expect(baseFileKey(base)).toBe(`image ${sha512}`);
    const stackSteps = customizeArgs(profile, "trixie", base, path.join(dir, "out.qcow2"), { secureBoot: false }, { baseKey: `image ${sha512}` });
    expect(customizeArgs(profile, "trixie", base, path.join(dir, "out.qcow2"), { secureBoot: false })).toEqual(stackSteps);
  });
});
