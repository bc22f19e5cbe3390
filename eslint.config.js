// The lint gate's TypeScript rules (__tests__/integration/lint.test.ts): ESLint's and
// typescript-eslint's recommended sets.
const js = require("@eslint/js");
const globals = require("globals");
const tseslint = require("typescript-eslint");

module.exports = tseslint.config(
  { ignores: [".gen/**", "cdktf.out/**", "node_modules/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  // Plain JavaScript here is CommonJS run by Node itself (this file, testkit/file-server.js).
  { files: ["**/*.js"], rules: { "@typescript-eslint/no-require-imports": "off" } },
  // Tests read what has no type: synthesized cdk.tf.json, the engine's plans, captures' manifests.
  { files: ["__tests__/**/*.ts"], rules: { "@typescript-eslint/no-explicit-any": "off" } },
);
