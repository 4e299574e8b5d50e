/**
 * usdc-mint-service/client: the typed SDK of the MintService, kept for code that
 * imports it from the service's own package. The SDK is the package
 * `@usdc-mint/client` (packages/client); this entry re-exports it unchanged.
 */
export * from "../../packages/client/src/index.js";
