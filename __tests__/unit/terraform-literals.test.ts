// Config text goes into cdk.tf.json, which the engine reads as templates: it must
// arrive byte for byte (lib/terraform-string.ts). Here the escaping in synth; the
// real engine reading it is in __tests__/integration/terraform-literals.test.ts.
import { stringify } from "yaml";
import { synthStack } from "../helpers/synth-stack";
import { parseConfig } from "../helpers/test-config";
import { terraformLiterals } from "../../lib/terraform-string";
import { LabStack } from "../../stacks/lab-stack";
import { testLab } from "../../testkit/lab-yaml";

// An interpolation, a directive and an escaped interpolation, as a shell user writes them.
const RUNCMD = "echo ${HOME} %{x} $${y}";
const USER_DATA = { runcmd: [RUNCMD], write_files: [{ path: "/etc/motd", content: "%{ if true }${path.cwd}%{ endif }\n" }] };

describe("terraformLiterals", () => {
  test("doubles ${ and %{ in strings and keys, at any depth", () => {
    expect(terraformLiterals({ [RUNCMD]: [RUNCMD, 3, true] })).toEqual({ "echo $${HOME} %%{x} $$${y}": ["echo $${HOME} %%{x} $$${y}", 3, true] });
  });

  test("leaves cdktf tokens and objects that are not plain data as they are", () => {
    const resource = new (class Resource {})();
    const value = terraformLiterals({ ref: "${TfToken[TOKEN.12]}", mixed: "a ${TfToken[TOKEN.3]} ${b}", resource });
    expect(value).toEqual({ ref: "${TfToken[TOKEN.12]}", mixed: "a ${TfToken[TOKEN.3]} $${b}", resource });
    expect(value.resource).toBe(resource);
  });

  test("synthesized references stay references", () => {
    const config = parseConfig(stringify(testLab({ vms: [{ name: "web", user_data: USER_DATA }] })), "t.yaml", { cacheDir: "/var/cache/btw-test" });
    const tf = synthStack((app) => new LabStack(app, "lab", config));
    const seed = Object.entries<any>(tf.resource.terraform_data).find(([name]) => name.startsWith("vm-web_seed_"))![1];
    expect(seed.triggers_replace.image).toMatch(/^\$\{terraform_data\.image-minimal_customize_[0-9A-F]{8}\.id\}$/);
    expect(seed.provisioner[0]["local-exec"].environment.USER_DATA).toContain("echo $${HOME} %%{x} $$${y}");
    // State keeps no user-data text: its hash and its keys' sizes.
    expect(seed.triggers_replace.user_data).toBeUndefined();
    expect(seed.triggers_replace.user_data_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(seed.triggers_replace.user_data_keys).toMatchObject({ runcmd: expect.any(Number) });
  });

  test("a cache folder the engine would read as a template is refused, naming BTW_CACHE_DIR", () => {
    const lab = stringify(testLab({ vms: [{ name: "web", user_data: USER_DATA }] }));
    expect(() => parseConfig(lab, "t.yaml", { cacheDir: "/var/cache/btw ${x}" })).toThrow(
      /the cache folder \/var\/cache\/btw \$\{x\} \(BTW_CACHE_DIR\): must not contain whitespace or control characters/,
    );
    expect(() => parseConfig(lab, "t.yaml", { cacheDir: "/var/cache/btw%{x}" })).toThrow(/\(BTW_CACHE_DIR\): must not contain '\$\{' or '%\{'/);
  });
});
