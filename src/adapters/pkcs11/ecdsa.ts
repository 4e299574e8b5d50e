/**
 * secp256k1 details an HSM leaves to the caller. PKCS#11's CKM_ECDSA returns
 * the bare (r, s) pair: Ethereum nodes refuse a high s (EIP-2), and a
 * transaction needs the recovery bit, which the device does not report.
 *
 * The bit is the parity of the y coordinate of the signature's point R. With
 * the signer's public key Q known, R = (e/s)·G + (r/s)·Q: one verification,
 * which also proves the device signed with the expected key (R.x ≡ r). Q is
 * fixed per signer, so it gets a precomputed window table like G's; that
 * makes this about ten times cheaper than recovering the key from each
 * candidate bit.
 */
import { secp256k1 } from "@noble/curves/secp256k1";
import { getAddress, keccak256 } from "viem";
import type { Address, EcdsaSignature, Hex } from "../../domain/settlement/ports.js";

type Point = InstanceType<typeof secp256k1.ProjectivePoint>;

/** The order n of secp256k1's base point. */
const CURVE_ORDER = secp256k1.CURVE.n;
const HALF_ORDER = CURVE_ORDER >> 1n;

function toHex32(n: bigint): Hex {
  return `0x${n.toString(16).padStart(64, "0")}`;
}

function mod(a: bigint): bigint {
  const r = a % CURVE_ORDER;
  return r >= 0n ? r : r + CURVE_ORDER;
}

/** a⁻¹ mod n (extended Euclid; n is prime and 0 < a < n). */
function invert(a: bigint): bigint {
  let [oldR, r] = [mod(a), CURVE_ORDER];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return mod(oldS);
}

/** A signer's public key, prepared once for fast recovery-bit computation. */
export class SigningKey {
  readonly address: Address;
  private readonly point: Point;

  /** `uncompressed`: 0x04 ‖ X ‖ Y, 65 bytes. */
  constructor(uncompressed: Uint8Array) {
    this.address = addressOfPublicKey(uncompressed);
    // A wNAF table for Q, as noble keeps for G: later (constant-time)
    // multiplications by Q are cheap. The "unsafe" variants ignore such tables.
    this.point = secp256k1.utils.precompute(8, secp256k1.ProjectivePoint.fromHex(uncompressed));
  }

  /**
   * Turns a raw 64-byte (r ‖ s) signature of `digest` into an Ethereum
   * signature: s moved to the lower half (n − s), recovery bit from R's y.
   * Throws when the signature does not verify against this key (the wrong
   * key signed, or the device returned garbage).
   */
  toEthereumSignature(digest: Hex, rawRs: Uint8Array): EcdsaSignature {
    if (rawRs.length !== 64) throw new Error(`ECDSA signature must be 64 bytes (r ‖ s), got ${rawRs.length}`);
    const r = BigInt("0x" + Buffer.from(rawRs.subarray(0, 32)).toString("hex"));
    const s = BigInt("0x" + Buffer.from(rawRs.subarray(32)).toString("hex"));
    if (r === 0n || r >= CURVE_ORDER || s === 0n || s >= CURVE_ORDER) throw new Error("ECDSA signature out of range");
    const e = mod(BigInt(digest));
    const sInv = invert(s);
    const u1 = mod(e * sInv);
    const u2 = mod(r * sInv);
    // u2 ≠ 0 since r, s⁻¹ ≠ 0; u1 = 0 only for a digest ≡ 0 (mod n).
    const qPart = this.point.multiply(u2);
    const R = u1 === 0n ? qPart : secp256k1.ProjectivePoint.BASE.multiply(u1).add(qPart);
    if (R.equals(secp256k1.ProjectivePoint.ZERO)) throw new Error(`signature does not verify against the signer's key ${this.address}`);
    const { x, y } = R.toAffine();
    if (mod(x) !== r) throw new Error(`signature does not verify against the signer's key ${this.address}`);
    // R.x ≥ n would need the recovery ids 2/3, which Ethereum cannot express
    // (probability ~2⁻¹²⁸); refuse rather than produce a wrong signature.
    if (x !== r) throw new Error("signature's R.x overflows the group order; sign again");
    let yParity: 0 | 1 = (y & 1n) === 1n ? 1 : 0;
    let lowS = s;
    if (s > HALF_ORDER) {
      // (r, n − s) is the signature of the point −R: the parity flips.
      lowS = CURVE_ORDER - s;
      yParity = yParity === 1 ? 0 : 1;
    }
    return { r: toHex32(r), s: toHex32(lowS), yParity };
  }
}

/** The address of an uncompressed secp256k1 public key (0x04 ‖ X ‖ Y). */
export function addressOfPublicKey(uncompressed: Uint8Array): Address {
  if (uncompressed.length !== 65 || uncompressed[0] !== 0x04) throw new Error("expected a 65-byte uncompressed secp256k1 point");
  const hash = keccak256(uncompressed.subarray(1));
  return getAddress(`0x${hash.slice(-40)}`);
}
