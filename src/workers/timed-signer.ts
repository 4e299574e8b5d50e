/**
 * A link around the settlement signer that records how long each signature
 * takes (signer latency), so the signers themselves know nothing of
 * metrics. Latency is measured with `performance.now()`, not the injected
 * clock, as the gRPC metrics link does: it is the device's real time that an
 * operator watches (a fake clock in a test would report 0).
 */
import type { EcdsaSignature, Hex, SettlementMetricsSink, Signer } from "../domain/settlement/ports.js";

export function timedSigner(signer: Signer, metrics: SettlementMetricsSink): Signer {
  return {
    kind: signer.kind,
    address: signer.address,
    async signDigest(digest: Hex): Promise<EcdsaSignature> {
      const startMs = performance.now();
      try {
        const sig = await signer.signDigest(digest);
        metrics.signed((performance.now() - startMs) / 1000, true);
        return sig;
      } catch (err) {
        metrics.signed((performance.now() - startMs) / 1000, false);
        throw err;
      }
    },
    close: () => signer.close(),
  };
}
