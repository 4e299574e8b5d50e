import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: integration tests spawn servers; keep parallelism modest.
    maxWorkers: 2,
    // Prints the contract suites' rule × store table at the end of the run.
    globalSetup: ["test/support/contract-coverage-setup.ts"],
  },
});
