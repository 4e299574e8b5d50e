/**
 * A stop-gap until authentication (issue 9) lands: with
 * MINT_DEV_PRINCIPAL_HEADER=true (refused unless the listener is loopback),
 * the caller names its principal in the `x-mint-dev-principal` header, so
 * requester and approvers of issue 11 can differ in tests and demos. Anyone
 * who can reach the port can claim any name, which is why it is off by
 * default and loopback only; issue 9's auth link replaces it (the principal
 * then comes from the caller's credentials).
 */
import type { Link } from "./chain.js";
import { Call } from "./chain.js";

export const DEV_PRINCIPAL_HEADER = "x-mint-dev-principal";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export const devPrincipal: Link = (call, next) => {
  const value = call.metadata.get(DEV_PRINCIPAL_HEADER)[0];
  // A malformed name is ignored (the call runs as `local`), never echoed.
  if (typeof value === "string" && NAME.test(value) && call instanceof Call) call.principal = value;
  return next(call);
};
