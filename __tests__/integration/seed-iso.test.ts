// A VM's seed (scripts/steps/make-seed-iso.sh) checks its user-data with the cloud-init
// of Debian's real trixie image, read in place through lib/image-view.sh: no copy of the
// image per VM, seeds of several VMs at once, and nothing held after any exit.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { acquireFixtureBase } from "../../testkit/fixture-image";
import { heldUnder, seedVm, startSeed, userDataOf } from "../../testkit/seed";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "sv-seed-"));
const seeds = path.join(work, "seeds");
let image = "";

beforeAll(() => {
  image = acquireFixtureBase("trixie", work);
}, 1_500_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const userData = (hostname: string, extra = "") => `#cloud-config\nhostname: ${hostname}\nruncmd:\n  - echo ${hostname}\n${extra}`;
const allocated = (file: string) => fs.statSync(fs.realpathSync(file)).blocks * 512;

/** Polls until nothing is held under the folder (the kernel drops a dead namespace's mounts soon after). */
async function releasedUnder(dir: string, timeoutMs = 20_000): Promise<string[]> {
  const started = Date.now();
  let held = heldUnder(dir);
  while (held.length > 0 && Date.now() - started < timeoutMs) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    held = heldUnder(dir);
  }
  return held;
}

describe("make-seed-iso.sh on Debian's real image", () => {
  test("a seed is checked by the image's own cloud-init in place: no copy of the image is written, and the ISO is its owner's alone", async () => {
    const output = path.join(seeds, "sv-a.iso");
    const run = await seedVm({ name: "sv-a", output, image, userData: userData("sv-a") });
    expect(run.output).toMatch(/make-seed-iso: sv-a: validating user-data with the image's own cloud-init/);
    expect(run.status).toBe(0);
    // The image holds about a GiB; the old way wrote all of it again per VM.
    expect(allocated(image)).toBeGreaterThan(500 * 2 ** 20);
    expect(run.writtenBytes).toBeLessThan(4 * 2 ** 20);
    expect(fs.statSync(output).mode & 0o777).toBe(0o600);
    expect(userDataOf(output)).toBe(userData("sv-a") + "\n");
    expect(fs.readdirSync(seeds)).toEqual(["sv-a.iso"]);
    expect(heldUnder(work)).toEqual([]);
  }, 300_000);

  test("user-data the image's schema refuses fails the seed, naming the VM, the keys and cloud-init's messages but no value", async () => {
    const secrets = ["sv-secret-runcmd-1", "sv-secret-lock-2", "sv-secret-content-3", "87654321"];
    const bad =
      `#cloud-config\nhostname: sv-bad\nruncmd: "echo ${secrets[0]}"\n` +
      `users:\n  - name: svuser\n    lock_passwd: "${secrets[1]}"\n    passwd: ${secrets[3]}\n` +
      `write_files:\n  - path: 12\n    content: {text: "${secrets[2]}"}\n`;
    const output = path.join(seeds, "sv-bad.iso");
    const run = await seedVm({ name: "sv-bad", output, image, userData: bad });
    expect(run.status).toBe(1);
    expect(run.output).toMatch(/make-seed-iso: sv-bad: user-data fails the cloud-init schema:/);
    expect(run.output).toMatch(/runcmd: <hidden> is not of type 'array'/);
    expect(run.output).toMatch(/users\.0\.lock_passwd: <hidden> is not of type 'boolean'/);
    expect(run.output).toMatch(/users\.0\.passwd: <hidden> is not of type 'string'/);
    expect(run.output).toMatch(/write_files\.0\.content: <hidden> is not of type 'string'/);
    for (const secret of secrets) expect(run.output).not.toContain(secret);
    expect(fs.existsSync(output)).toBe(false);
    expect(fs.readdirSync(seeds).filter((file) => file.includes("sv-bad"))).toEqual([]);
    expect(heldUnder(work)).toEqual([]);
  }, 300_000);

  test("two VMs seeded at once from one image each get their own seed, and nothing is left held", async () => {
    const [one, two] = await Promise.all(["sv-one", "sv-two"].map((name) => seedVm({ name, output: path.join(seeds, `${name}.iso`), image, userData: userData(name) })));
    expect(one.output).toMatch(/seed written to/);
    expect([one.status, two.status]).toEqual([0, 0]);
    expect(userDataOf(path.join(seeds, "sv-one.iso"))).toBe(userData("sv-one") + "\n");
    expect(userDataOf(path.join(seeds, "sv-two.iso"))).toBe(userData("sv-two") + "\n");
    expect(one.writtenBytes + two.writtenBytes).toBeLessThan(8 * 2 ** 20);
    expect(fs.readdirSync(seeds).filter((file) => file.startsWith("."))).toEqual([]);
    expect(heldUnder(work)).toEqual([]);
  }, 300_000);

  test.each(["SIGTERM", "SIGKILL"] as const)(
    "a seed %s-ed while its image is open leaves no daemon, loop device or mount, and the next run clears its work folder",
    async (signal) => {
      const name = `sv-kill-${signal.toLowerCase()}`;
      const output = path.join(seeds, `${name}.iso`);
      const seed = startSeed({ name, output, image, userData: userData(name) });
      const started = Date.now();
      // Until the view is open: the daemon serves the image and a loop device reads it.
      while (!heldUnder(work).some((held) => held.startsWith("loop device")) && Date.now() - started < 60_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(heldUnder(work)).toEqual(expect.arrayContaining([expect.stringMatching(/^daemon /), expect.stringMatching(/^loop device: .*disk$/)]));
      seed.kill(signal);
      const run = await seed.done;
      expect(fs.existsSync(output)).toBe(false);
      expect(await releasedUnder(work)).toEqual([]);
      // What SIGKILL left (the work folder and its user-data, 0600) goes with the next run.
      const workFolders = () => fs.readdirSync(seeds).filter((file) => file.startsWith(`.seed-${name}.`));
      if (signal === "SIGTERM") {
        expect(run.output).not.toMatch(/seed written/);
        expect(workFolders()).toEqual([]);
      } else {
        expect(workFolders()).toHaveLength(1);
        expect(fs.statSync(path.join(seeds, workFolders()[0])).mode & 0o777).toBe(0o700);
      }
      const again = await seedVm({ name, output, image, userData: userData(name) });
      expect(again.status).toBe(0);
      expect(workFolders()).toEqual([]);
      expect(heldUnder(work)).toEqual([]);
    },
    300_000,
  );
});
