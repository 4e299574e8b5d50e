/**
 * A signer holding its private key in process memory. For tests and demos
 * only: wiring refuses it on a non-loopback listener, because
 * anyone who reads the process's memory or configuration holds the treasury.
 */
import { sign, privateKeyToAddress } from "viem/accounts";
import { isDigest, type Address, type EcdsaSignature, type Hex, type Signer } from "../../domain/settlement/ports.js";

export class DevKeySigner implements Signer {
  readonly kind = "dev-key" as const;
  readonly address: Address;

  constructor(private readonly privateKey: Hex) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey)) throw new Error("dev-key: the private key must be 32 bytes of hex");
    this.address = privateKeyToAddress(privateKey);
  }

  async signDigest(digest: Hex): Promise<EcdsaSignature> {
    if (!isDigest(digest)) throw new Error("signDigest: the digest must be 32 bytes of hex");
    // noble-curves (inside viem) already produces low-s signatures with the recovery bit.
    const sig = await sign({ hash: digest, privateKey: this.privateKey });
    return { r: sig.r, s: sig.s, yParity: sig.yParity === 1 ? 1 : 0 };
  }

  async close(): Promise<void> {}
}
