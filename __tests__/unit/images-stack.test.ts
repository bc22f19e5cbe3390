// The images stack: what CI's image job deploys (`cdktf deploy images`) and
// publishes, built by the same pipeline as the lab's images.
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { ImagesStack } from "../../stacks/images-stack";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

const VMS = [{ name: "a" }, { name: "b", profile: "metal" }];

function config(lab = testLab({ vms: VMS })) {
  return parseConfig(stringify(lab), "test.yaml", { cacheDir: "/var/cache/btw-test" });
}

const commands = (tf: any) => Object.values(tf.resource.terraform_data).map((step: any) => step.provisioner[0]["local-exec"].command as string);
const customizeCommands = (tf: any) => commands(tf).filter((command) => command.includes("customize-image.sh"));

describe("the images stack", () => {
  test("builds the default profile and each VM's profile, captures nothing, needs no libvirt, and outputs each qcow2", () => {
    const tf = synthStack((app) => new ImagesStack(app, "images", config()));
    expect(tf.provider).toBeUndefined();
    expect(commands(tf).filter((command) => /^sh \S+\/prepare-cloud-img\.sh /.test(command))).toHaveLength(1);
    expect(commands(tf).some((command) => command.includes("capture-partitions.sh"))).toBe(false);
    const images = tf.output.images.value;
    expect(Object.keys(images).sort()).toEqual(["metal", "minimal"]);
    expect(images.minimal).toMatch(/^\/var\/cache\/btw-test\/images\/minimal-[0-9a-f]{16}\.qcow2$/);
    for (const [profile, image] of Object.entries(images)) {
      // The profile's own folder is the last layer the script is given.
      const command = customizeCommands(tf).find((c) => c.includes(`--output ${image}`));
      expect(command?.match(/--layer (\S+)/g)?.pop()).toMatch(new RegExp(`/profiles/${profile}'?$`));
    }
    expect(tf.output["base-image"].value).toMatchObject({ url: "http://127.0.0.1:9/images/debian-13-generic-amd64.tar.xz" });
    // The base is the raw disk acquisition unpacks (no qcow2 copy of it), and customization starts from it.
    const base = tf.output["base-image"].value.path;
    expect(base).toMatch(/^\/var\/cache\/btw-test\/base\/debian-13-generic-amd64-[0-9a-f]{16}\.raw$/);
    expect(commands(tf).find((command) => command.includes("prepare-cloud-img.sh"))).toContain(`--link ${base}`);
    for (const command of customizeCommands(tf)) expect(command).toContain(`--base ${base} `);
  });

  test("its image steps are the lab's: the same addresses and commands, so a deploy of either reuses the other's images", () => {
    const images = synthStack((app) => new ImagesStack(app, "images", config())).resource.terraform_data;
    const lab = synthStack((app) => new LabStack(app, "lab", config())).resource.terraform_data;
    for (const name of Object.keys(images)) expect(images[name].provisioner).toEqual(lab[name].provisioner);
  });

  test("given profiles build those instead", () => {
    const tf = synthStack((app) => new ImagesStack(app, "images", config(), { profiles: ["btwd"] }));
    expect(Object.keys(tf.output.images.value)).toEqual(["btwd"]);
    expect(customizeCommands(tf)).toHaveLength(1);
  });
});
