// The engine reads every string in cdk.tf.json (map keys included) as a
// template: `${...}` interpolates and `%{...}` is a directive. A string from the
// config (a runcmd holding `echo ${HOME}`) reaches a resource byte for byte only
// when both are doubled. hostStep passes everything through terraformLiterals:
// it is where free text (cloud-init data) enters; every other string from the
// config or the environment is refused by lib/config/config.ts if it holds either.

// cdktf's token markers (references such as a resource's id) are `${TfToken[...]}`;
// cdktf turns them into interpolations itself, so they stay as they are.
const TEMPLATE_START = /\$\{(?!TfToken\[)|%\{/g;

/** A literal string as the engine should read it: `${` -> `$${`, `%{` -> `%%{`, cdktf tokens untouched. */
function terraformLiteral(value: string): string {
  return value.replace(TEMPLATE_START, (start) => start[0] + start);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A value with every string, and every key of its plain objects, made literal
 * for the engine; anything else (numbers, resources, resolvable tokens) passes
 * through unchanged.
 */
export function terraformLiterals<T>(value: T): T {
  if (typeof value === "string") return terraformLiteral(value) as T;
  if (Array.isArray(value)) return value.map((item) => terraformLiterals(item)) as T;
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [terraformLiteral(key), terraformLiterals(item)])) as T;
  }
  return value;
}
