// Three projects, so the fast ones can run alone:
// - unit: pure (config, synth in memory, rendering): no engine, no network, no root;
// - integration: the real engine, the cdktf CLI, the CI tools, scripts on files (no VM);
// - e2e: real libvirt/QEMU, Debian's real images;
const transform = { "^.+\\.ts$": ["ts-jest", { isolatedModules: true }] };
module.exports = {
  reporters: ["default", "<rootDir>/__tests__/helpers/summary-reporter.js"],
  projects: [
    { displayName: "unit", testEnvironment: "node", transform, testMatch: ["<rootDir>/__tests__/unit/**/*.test.ts"] },
    {
      displayName: "integration",
      testEnvironment: "node",
      transform,
      testMatch: ["<rootDir>/__tests__/integration/**/*.test.ts"],
      globalSetup: "<rootDir>/__tests__/helpers/integration-global-setup.ts",
    },
    {
      displayName: "e2e",
      testEnvironment: "node",
      transform,
      testMatch: ["<rootDir>/__tests__/e2e/**/*.test.ts"],
      globalSetup: "<rootDir>/__tests__/helpers/e2e-global-setup.ts",
      globalTeardown: "<rootDir>/__tests__/helpers/e2e-global-teardown.ts",
    },
  ],
};
