// The local EVM node the settlement tests and `npm run settlement:demo` start
// (`hardhat node --config test/support/evm/hardhat.config.cjs`). Knobs come
// from the environment of that child process only (set by test/support/evm/evm-node.ts):
//   EVM_CHAIN_ID        chain id (default 31337)
//   EVM_INTERVAL_MS     0 = automine (a block per transaction); N = a block every N ms, no automine
// A reverted transaction must behave as on a real chain (hash returned,
// receipt status "reverted"), hence throwOnTransactionFailures: false.
const intervalMs = Number(process.env.EVM_INTERVAL_MS ?? "0");

/** @type {import("hardhat/config").HardhatUserConfig} */
module.exports = {
  paths: { root: __dirname, cache: require("node:os").tmpdir() + "/hardhat-cache", artifacts: require("node:os").tmpdir() + "/hardhat-artifacts" },
  networks: {
    hardhat: {
      chainId: Number(process.env.EVM_CHAIN_ID ?? "31337"),
      hardfork: "cancun",
      throwOnTransactionFailures: false,
      throwOnCallFailures: false,
      loggingEnabled: false,
      mining: intervalMs > 0 ? { auto: false, interval: intervalMs } : { auto: true, interval: 0 },
      accounts: { count: 5 },
    },
  },
};
