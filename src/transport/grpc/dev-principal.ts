/**
 * For tests and demos without an auth file: with
 * MINT_DEV_PRINCIPAL_HEADER=true (refused unless the listener is loopback),
 * (refused beside MINT_AUTH_FILE) the caller renames the all-roles `local`
 * principal in the `x-mint-dev-principal` header, so
 * requester and approvers of issue 11 can differ in tests and demos. Anyone
 * who can reach the port can claim any name, which is why it is off by
 * default, loopback only and never beside an auth file (where the principal
 * comes from the caller's credentials). It runs after the auth link.
 */
import { LOCAL_PRINCIPAL } from "../../domain/authorization.js";
import type { Link } from "./chain.js";
import { Call } from "./chain.js";

export const DEV_PRINCIPAL_HEADER = "x-mint-dev-principal";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export const devPrincipal: Link = (call, next) => {
  const value = call.metadata.get(DEV_PRINCIPAL_HEADER)[0];
  // A malformed name is ignored (the call runs as `local`), never echoed.
  if (typeof value === "string" && NAME.test(value) && call instanceof Call) call.principal = { ...LOCAL_PRINCIPAL, name: value };
  return next(call);
};
