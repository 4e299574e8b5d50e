/**
 * Certificates made at test time with openssl (EC P-256, fast): a server CA
 * with two server certificates (the second stands for a rotation), a client CA
 * with clients, an expired client, a client signed by an unknown CA and a
 * client whose identity names no principal. Files live in a temp directory
 * that `remove()` deletes.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TestCerts {
  readonly dir: string;
  readonly serverCa: KeyPair;
  /** CN mint-server-1, SAN IP:127.0.0.1 and DNS:localhost. */
  readonly server: KeyPair;
  /** CN mint-server-2: what a rotation installs. */
  readonly server2: KeyPair;
  readonly clientCa: KeyPair;
  /** A client certificate signed by the client CA with the given SAN (e.g. `URI:spiffe://mint.test/a`). */
  client(name: string, san: string, opts?: { expired?: boolean; ca?: KeyPair }): KeyPair;
  /** A CA nobody trusts, for "signed by an unknown CA". */
  readonly rogueCa: KeyPair;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(path.join(tmpdir(), "mint-certs-"));
  const pair = (name: string): KeyPair => {
    const certFile = path.join(dir, `${name}.crt`);
    const keyFile = path.join(dir, `${name}.key`);
    return {
      certFile,
      keyFile,
      get cert() {
        return readFileSync(certFile);
      },
      get key() {
        return readFileSync(keyFile);
      },
    };
  };
  const ca = (name: string): KeyPair => {
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-subj", `/CN=${name}`, "-days", "30"],
      dir,
    );
    return pair(name);
  };
  const leaf = (name: string, issuer: KeyPair, san: string, usage: "serverAuth" | "clientAuth", days: number): KeyPair => {
    const ext = path.join(dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`], dir);
    // -days -1 puts notAfter a day in the past: an expired certificate.
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", issuer.certFile, "-CAkey", issuer.keyFile, "-days", String(days), "-extfile", ext, "-out", `${name}.crt`], dir);
    return pair(name);
  };

  const serverCa = ca("server-ca");
  const clientCa = ca("client-ca");
  const rogueCa = ca("rogue-ca");
  const server = leaf("mint-server-1", serverCa, "IP:127.0.0.1,DNS:localhost", "serverAuth", 30);
  const server2 = leaf("mint-server-2", serverCa, "IP:127.0.0.1,DNS:localhost", "serverAuth", 30);
  return {
    dir,
    serverCa,
    server,
    server2,
    clientCa,
    rogueCa,
    client: (name, san, opts = {}) => leaf(name, opts.ca ?? clientCa, san, "clientAuth", opts.expired === true ? -1 : 30),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
