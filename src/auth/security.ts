/**
 * The service's security setup, opened once at start from the config: the
 * server credentials (plaintext, TLS or mutual TLS, certificates reloadable),
 * who the callers are (the principals file, or everyone is `local`), and the
 * SIGHUP reload of both. The auth link asks `identify` for every call.
 */
import type { Config } from "../config.js";
import { LOCAL_PRINCIPAL } from "../domain/authorization.js";
import { authenticate, Directory, type AuthnResult, type Credentials } from "./authenticate.js";
import { loadPrincipalsFile } from "./principals-file.js";
import { ReloadableCertificates } from "./tls.js";

export type SecurityMode =
  /** No auth file: every caller is `local` with every role (loopback, or MINT_INSECURE). */
  | "open"
  /** An auth file: callers prove who they are. */
  | "authenticated";

export interface ReloadReport {
  /** What was re-read and in force now, or why not (the previous files stay in force). */
  readonly principals?: { readonly ok: true; readonly count: number } | { readonly ok: false; readonly error: string };
  readonly certificates?: { readonly ok: true } | { readonly ok: false; readonly error: string };
}

const LOCAL: AuthnResult = Object.freeze({ ok: true, principal: LOCAL_PRINCIPAL });

export class Security {
  private directory: Directory | undefined;
  /** The TLS certificates (undefined: plaintext). */
  readonly certificates: ReloadableCertificates | undefined;

  /**
   * Reads the principals file and the TLS files. Throws AuthFileError or
   * TlsFileError (one line naming the file or variable) when one is unusable.
   */
  constructor(private readonly config: Pick<Config, "authFile" | "tlsCert" | "tlsKey" | "tlsClientCa">) {
    this.directory = config.authFile === "" ? undefined : new Directory(loadPrincipalsFile(config.authFile));
    this.certificates =
      config.tlsCert === "" ? undefined : new ReloadableCertificates({ certFile: config.tlsCert, keyFile: config.tlsKey, clientCaFile: config.tlsClientCa });
  }

  get mode(): SecurityMode {
    return this.directory === undefined ? "open" : "authenticated";
  }

  /** How many principals the auth file defines (0 when open). */
  get principalCount(): number {
    return this.directory?.principalCount ?? 0;
  }

  /** Who is calling: `local` when open, else authentication against the current principals file. */
  identify(creds: Credentials): AuthnResult {
    return this.directory === undefined ? LOCAL : authenticate(this.directory, creds);
  }

  /**
   * Re-reads the principals file and the certificates (SIGHUP). Each part
   * that fails keeps its previous version in force; the report says which.
   * Calls in flight keep the principal they were given; the next call sees
   * the new file.
   */
  reload(): ReloadReport {
    const report: { principals?: ReloadReport["principals"]; certificates?: ReloadReport["certificates"] } = {};
    if (this.config.authFile !== "") {
      try {
        this.directory = new Directory(loadPrincipalsFile(this.config.authFile));
        report.principals = { ok: true, count: this.directory.principalCount };
      } catch (err) {
        report.principals = { ok: false, error: (err as Error).message };
      }
    }
    if (this.certificates !== undefined) {
      try {
        this.certificates.reload();
        report.certificates = { ok: true };
      } catch (err) {
        report.certificates = { ok: false, error: (err as Error).message };
      }
    }
    return report;
  }
}

/** No auth file, no TLS: every caller is `local` (what a loopback-only service without MINT_AUTH_FILE runs). */
export function openSecurity(): Security {
  return new Security({ authFile: "", tlsCert: "", tlsKey: "", tlsClientCa: "" });
}
