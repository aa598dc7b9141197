// Two suites: fast unit tests with Pulumi mocks, and integration tests that
// deploy to the real engine with the real CLI (run one at a time: they share
// one Docker engine and two cores).
const tsJest = { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] };

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      transform: tsJest,
      roots: ["<rootDir>/tests"],
      testPathIgnorePatterns: ["/tests/integration/"],
    },
    {
      displayName: "integration",
      testEnvironment: "node",
      transform: tsJest,
      roots: ["<rootDir>/tests/integration"],
      testMatch: ["**/*.test.ts"],
      slowTestThreshold: 120,
    },
  ],
};
