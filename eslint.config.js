// Lint that catches what the compiler does not: floating promises (a call
// that answers never, or twice), non-exhaustive switches over error codes,
// import cycles, and the core reaching for transport or storage.
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";

export default tseslint.config(
  { ignores: ["dist/**", "gen/**", "node_modules/**", "coverage/**", "bench/out/**", "bench/.build/**", "test/.tmp/**", "packages/*/dist/**", "packages/*/gen/**", "eslint.config.js"] },
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/await-thenable": "error",
      // ignoreExternal: cycles only matter in our own code, and walking into
      // packages trips the legacy resolver (viem ships a folder named "node").
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
    },
  },
  {
    // The server runs without the packages a user installs apart from it
    // (packages/client, packages/mintctl): only the service package's
    // compatibility entries (its ./client export and mintctl bin) load them.
    files: ["src/**/*.ts"],
    ignores: ["src/client/index.ts", "src/cli/main.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/packages/**", "@usdc-mint/*"], message: "the server does not load the client or mintctl packages" }] }],
    },
  },
  {
    files: ["src/domain/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["@grpc/*", "pg", "ioredis", "pino", "prom-client", "**/observability/**", "**/gen/**", "**/adapters/**", "**/transport/**", "**/packages/**", "@usdc-mint/*"], message: "the core imports no transport, storage, logging or metrics library (STYLE habit 1; record through MetricsSink)" },
          ],
        },
      ],
      "no-restricted-properties": ["error", { object: "process", property: "env", message: "only src/config.ts reads the environment" }],
    },
  },
);
