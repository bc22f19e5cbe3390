// The images stack through the cdktf CLI, as CI's image job synthesizes it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../lib/config/config";
import { testLab, writeLab } from "../../testkit/lab-yaml";

const VMS = [{ name: "a" }, { name: "b", profile: "metal" }];

describe("the images stack", () => {
  test("`cdktf synth` takes the profiles from BTW_PROFILES, and refuses an unknown one by name", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "btw-images-"));
    try {
      const synth = (profiles: string) =>
        spawnSync("npx", ["cdktf", "synth", "--output", path.join(work, "out")], {
          cwd: PROJECT_DIR,
          env: { ...process.env, BTW_CONFIG: writeLab(testLab({ vms: VMS }), work), BTW_STATE_DIR: path.join(work, "state"), BTW_PROFILES: profiles, CI: "1", FORCE_COLOR: "0" },
          encoding: "utf8",
        });
      const built = synth(" metal  btwd ");
      expect(built.status).toBe(0);
      const tf = JSON.parse(fs.readFileSync(path.join(work, "out", "labs", "btwtest", "stacks", "images", "cdk.tf.json"), "utf8"));
      expect(Object.keys(tf.output.images.value).sort()).toEqual(["btwd", "metal"]);
      const unknown = synth("no-such-profile");
      expect(unknown.status).not.toBe(0);
      expect(`${unknown.stdout}${unknown.stderr}`).toMatch(/btw-img: .*no-such-profile/);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);
});
