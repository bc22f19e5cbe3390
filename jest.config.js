// Fast tests (synth, config, rendering) and slow end-to-end tests against real
// libvirt/QEMU live in separate projects so the fast ones can run alone.
const transform = { "^.+\\.ts$": ["ts-jest", { isolatedModules: true }] };
module.exports = {
  reporters: ["default", "<rootDir>/__tests__/helpers/summary-reporter.js"],
  projects: [
    { displayName: "unit", testEnvironment: "node", transform, testMatch: ["<rootDir>/__tests__/unit/**/*.test.ts"] },
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
