// The image checksum is read at synth time: a new image behind the same URL
// must change the plan, and an unreachable SHA512SUMS must not stop a plan
// when the image was acquired before.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { checksumFor, ImageChecksumError, requireChecksumForDeploy, resolveImageChecksum } from "../../lib/config/image-release";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const FILE = "debian-13-generic-amd64.tar.xz";
const SUM_A = "a".repeat(128);
const SUM_B = "b".repeat(128);

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "btw-release-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function publish(sum: string, subdir = "images"): string {
  fs.mkdirSync(path.join(dir, subdir), { recursive: true });
  fs.writeFileSync(path.join(dir, subdir, "SHA512SUMS"), `${"c".repeat(128)}  debian-13-generic-arm64.tar.xz\n${sum}  ${FILE}\n`);
  return `file://${dir}/${subdir}`;
}

/** The acquire and customize steps of a synthesized lab whose image is published at base. */
function synth(base: string, cacheDir = path.join(dir, "cache")) {
  const lab = parseConfig(stringify(testLab({ imageBaseUrl: base })), "test.yaml", { cacheDir });
  const stack = synthStack((app) => new LabStack(app, "lab", lab));
  const steps = Object.values(stack.resource.terraform_data) as any[];
  const acquire = steps.find((s) => s.triggers_replace.url);
  const customize = steps.find((s) => s.triggers_replace.profile);
  return { acquire, customize };
}

describe("the image checksum behind a URL", () => {
  test("SHA512SUMS lines are read in text and binary mode, other files and bad sums give nothing", () => {
    expect(checksumFor(`${SUM_A}  ${FILE}\n`, FILE)).toBe(SUM_A);
    expect(checksumFor(`${SUM_A} *${FILE}\n`, FILE)).toBe(SUM_A);
    expect(checksumFor(`${SUM_A}  other.tar.xz\n`, FILE)).toBeUndefined();
    expect(checksumFor(`abc  ${FILE}\n`, FILE)).toBeUndefined();
  });

  test("a new image at the same URL changes the acquire trigger, its --sha512 and the customized image path", () => {
    const base = publish(SUM_A);
    const before = synth(base);
    expect(before.acquire.triggers_replace.sha512).toBe(SUM_A);
    expect(before.acquire.provisioner[0]["local-exec"].command).toContain(`--sha512 ${SUM_A}`);
    publish(SUM_B);
    const after = synth(base);
    expect(after.acquire.triggers_replace.sha512).toBe(SUM_B);
    expect(after.acquire.provisioner[0]["local-exec"].command).toContain(`--sha512 ${SUM_B}`);
    expect(after.customize.provisioner[0]["local-exec"].command).not.toBe(before.customize.provisioner[0]["local-exec"].command);
  });

  test("the same image served from another URL reuses the same customized image", () => {
    const one = synth(publish(SUM_A, "mirror-one"));
    const two = synth(publish(SUM_A, "mirror-two"));
    const output = (step: any) => /--output (\S+)/.exec(step.provisioner[0]["local-exec"].command)?.[1];
    expect(output(one.customize)).toBeDefined();
    expect(output(one.customize)).toBe(output(two.customize));
  });

  test("a SHA512SUMS without the image's line is an error naming both URLs", () => {
    const base = publish(SUM_A);
    expect(() => resolveImageChecksum(`${base}/debian-13-generic-ppc64el.tar.xz`, `${base}/SHA512SUMS`, path.join(dir, "link"))).toThrow(ImageChecksumError);
    expect(() => resolveImageChecksum(`${base}/debian-13-generic-ppc64el.tar.xz`, `${base}/SHA512SUMS`, path.join(dir, "link"))).toThrow(
      /has no sha512 line for debian-13-generic-ppc64el\.tar\.xz \(image\.url file:\/\//,
    );
  });

  test("an unreachable SHA512SUMS plans with the image acquired before, or warns that the image cannot be acquired", () => {
    const unreachable = `file://${dir}/nowhere/SHA512SUMS`;
    const link = path.join(dir, "base", "debian-13.raw");
    const fresh = resolveImageChecksum(`file://${dir}/nowhere/${FILE}`, unreachable, link);
    expect(fresh.sha512).toBeUndefined();
    expect(fresh.warning).toContain(`cannot read ${unreachable}`);
    expect(fresh.warning).toContain("the image cannot be acquired until it can be read");
    // A deploy stops there, naming the URL and why it could not be read.
    expect(() => requireChecksumForDeploy(fresh, "image.checksums")).toThrow(ImageChecksumError);
    expect(() => requireChecksumForDeploy(fresh, "image.checksums")).toThrow(
      new RegExp(`^cannot read ${unreachable} \\(curl: \\(37\\) .+\\), so the image's sha512 is unknown .*image\\.checksums; nothing was changed$`),
    );
    // A link as prepare-cloud-img.sh leaves it (base/<sha512>/disk.raw), with link.json beside it.
    fs.mkdirSync(path.join(dir, "base", SUM_A), { recursive: true });
    fs.writeFileSync(path.join(dir, "base", SUM_A, "disk.raw"), "");
    fs.symlinkSync(path.join(dir, "base", SUM_A, "disk.raw"), link);
    expect(resolveImageChecksum(`file://${dir}/nowhere/${FILE}`, unreachable, link).sha512).toBeUndefined();
    fs.writeFileSync(`${link}.json`, JSON.stringify({ sha512: SUM_A, url: `file://${dir}/nowhere/${FILE}`, checksums: unreachable }));
    const cached = resolveImageChecksum(`file://${dir}/nowhere/${FILE}`, unreachable, link);
    expect(cached.sha512).toBe(SUM_A);
    expect(cached.warning).toContain("planning with the image acquired before");
    expect(() => requireChecksumForDeploy(cached, "image.checksums")).not.toThrow();
  });

  test("the acquire step is handed the sha512 when it is known, and none when it is not (the script then stops, naming SHA512SUMS)", () => {
    expect(synth(publish(SUM_A)).acquire.provisioner[0]["local-exec"].command).toMatch(/--checksums file:\/\/\S+ --sha512 a{128} /);
    const offline = synth(`file://${dir}/nowhere`, path.join(dir, "empty-cache"));
    expect(offline.acquire.triggers_replace.sha512).toBe("");
    expect(offline.acquire.provisioner[0]["local-exec"].command).not.toContain("--sha512");
  });
});
