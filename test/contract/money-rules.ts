/**
 * Every rule that moves money or allowance. The contract suites record which
 * store adapters keep each one (`covered` in ./coverage.ts, called once a
 * test's assertions passed); the run's global teardown prints the rule ×
 * store table (test/support/contract-coverage-setup.ts), and each store's
 * suite ends with a test that fails when a rule has no passing test on that
 * store. A rule added here without a test on every store is an empty cell
 * and a failing suite.
 */
export const MONEY_RULES = {
  "mint-credit": "a mint credits its account",
  transfer: "a transfer moves money atomically, never below zero",
  "reconcile-reversal": "ReconcileMint debits the mint's amount and marks it REVERSED",
  "settlement-failure-reversal": "a failed mint settlement reverses the pending credit and supply, once",
  "allowance-charge": "a mint takes from its minter's allowance; beyond it ALLOWANCE_EXCEEDED, nothing changed",
  "allowance-cas": "SetMinterAllowance with an expected value: ALLOWANCE_CHANGED on mismatch, exact under races",
  "refund-reject-after-set": "rejection refunds a charge made after the last Set",
  "refund-reject-before-set": "rejection never refunds a charge made before a Set (journaled)",
  "refund-expiry-after-set": "expiry refunds a charge made after the last Set",
  "refund-expiry-before-set": "expiry never refunds a charge made before a Set (journaled)",
  "refund-reconcile-after-set": "ReconcileMint refunds a charge made after the last Set",
  "refund-reconcile-before-set": "ReconcileMint never refunds a charge made before a Set (journaled)",
  "refund-settlement-failure-after-set": "a failed settlement refunds a charge made after the last Set",
  "refund-settlement-failure-before-set": "a failed settlement never refunds a charge made before a Set (journaled)",
  "reserve-cap": "a set reserve caps supply to the last micro-USDC",
  "supply-ledger": "supply equals the ledger's sum",
  freeze: "a frozen account neither receives nor sends",
  redemption: "a redemption debits its account and lowers supply",
  "burn-failed-recredit": "a failed burn re-credits the account and supply, once",
  "replay-after-reject": "after a rejection a same-key mint applies afresh (never replays the rejected mint)",
  "replay-after-expiry": "after an expiry a same-key mint applies afresh",
  "replay-after-reconcile": "after ReconcileMint a same-key mint applies afresh",
  "replay-after-settlement-failure": "after a failed settlement a same-key mint never replays COMPLETED",
} as const;

export type MoneyRule = keyof typeof MONEY_RULES;
