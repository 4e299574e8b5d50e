/**
 * For tests and demos without an auth file: with
 * MINT_DEV_PRINCIPAL_HEADER=true (refused unless the listener is loopback,
 * and refused beside MINT_AUTH_FILE) the caller renames the all-roles `local`
 * principal in the `x-mint-dev-principal` header, so requester and approvers
 * can differ in tests and demos. Anyone who can reach the port can claim any
 * name, which is why it is off by default, loopback only and never beside an
 * auth file (where the principal comes from the caller's credentials). It
 * runs after the auth link.
 *
 * A header that names a reserved principal (`local`, or one of the service's
 * own actors, which skip checks and sign the journal's automatic entries) or
 * is not a valid name is refused UNAUTHENTICATED (`INVALID_DEV_PRINCIPAL`)
 * before the call runs, never ignored: a caller that meant to be someone
 * must not silently act as `local`. The value is never echoed.
 */
import { LOCAL_PRINCIPAL, RESERVED_PRINCIPAL_NAMES } from "../../domain/authorization.js";
import type { Answer, Link } from "./chain.js";
import { Call } from "./chain.js";

export const DEV_PRINCIPAL_HEADER = "x-mint-dev-principal";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const RESERVED: ReadonlySet<string> = new Set(RESERVED_PRINCIPAL_NAMES);

/** Whether `value` may be claimed in the header: a valid name that is not reserved. */
export function isDevPrincipalName(value: unknown): value is string {
  return typeof value === "string" && NAME.test(value) && !RESERVED.has(value);
}

export const devPrincipal: Link = (call, next) => {
  const values = call.metadata.get(DEV_PRINCIPAL_HEADER);
  if (values.length === 0) return next(call);
  const value = values[0];
  if (values.length > 1 || !isDevPrincipalName(value)) {
    const refused: Answer = {
      ok: false,
      error: {
        code: "UNAUTHENTICATED",
        rpc: call.rpc,
        reason: "INVALID_DEV_PRINCIPAL",
        message: `${DEV_PRINCIPAL_HEADER} must be one name of 1 to 128 characters A-Z a-z 0-9 . _ : @ - (not starting with a punctuation mark) and none of the service's own: ${RESERVED_PRINCIPAL_NAMES.join(", ")}`,
      },
    };
    return refused;
  }
  if (call instanceof Call) call.principal = { ...LOCAL_PRINCIPAL, name: value };
  return next(call);
};
