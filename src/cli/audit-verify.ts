/**
 * The offline audit verifier, `node dist/src/cli/audit-verify.js <store url>`
 * (`npm run audit:verify -- <store url>` after `npm run build`; in the
 * production image as it is): verifies the audit journal of a PostgreSQL
 * database directly (the server may be stopped). It needs the database
 * driver, so it ships with the server, not with mintctl. Reads only; it
 * never seals. Exit codes: 0 the chain is whole, 1 it is broken (the first
 * broken sequence number is printed), 2 bad usage or the database could not
 * be read.
 */
import pg from "pg";
import { verifyChain } from "../domain/audit.js";
import { PostgresAuditJournal } from "../adapters/postgres/postgres-audit-journal.js";

export async function auditVerify(argv: readonly string[], out: (line: string) => void): Promise<number> {
  const url = argv.find((a) => !a.startsWith("--"));
  if (url === undefined || !/^postgres(ql)?:\/\//.test(url)) {
    out("usage: node dist/src/cli/audit-verify.js postgres://user@host:port/db [--from=N] [--to=N]   (or: npm run audit:verify -- ...)");
    return 2;
  }
  const num = (name: string): number => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? 0 : Number(a.slice(name.length + 3));
  };
  const fromSeq = num("from");
  const toSeq = num("to");
  if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(toSeq) || fromSeq < 0 || toSeq < 0) {
    out("--from and --to must be whole numbers >= 0");
    return 2;
  }
  const pool = new pg.Pool({ connectionString: url, max: 1, application_name: "usdc-mint-service audit:verify" });
  pool.on("error", () => undefined);
  try {
    const v = await verifyChain(new PostgresAuditJournal(pool), fromSeq, toSeq);
    if (v.whole) {
      out(`audit chain whole: records ${v.firstSeq}..${v.lastSeq} (${v.checked} checked), head hash ${v.headHash}, ${v.unsealed} unsealed`);
      return 0;
    }
    out(`audit chain BROKEN at seq ${v.brokenSeq}: ${v.reason} (${v.checked} records before it are whole)`);
    return 1;
  } catch (err) {
    out(`cannot read the audit journal: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

// Run as a program (not when imported by tests).
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/").split("/").pop() ?? "\u0000")) {
  void auditVerify(process.argv.slice(2), (l) => process.stdout.write(`${l}\n`)).then((code) => process.exit(code));
}
