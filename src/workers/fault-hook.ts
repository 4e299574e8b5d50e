/** The settlement worker's test-only fault hook (MINT_TEST_FAULTS). */
import { WorkerCrash, type FaultHook, type FaultPoint } from "../domain/settlement/ports.js";

/**
 * The test-only fault hook: stops at the `count`-th time `point` is reached.
 * `action` "exit" kills the process (SIGKILL: no cleanup, as a crash);
 * "throw" raises `WorkerCrash` to stop an in-process worker the same way.
 * Refused unless the operator set MINT_TEST_FAULTS=true (`enabled`).
 */
export function createFaultHook(opts: { enabled: boolean; point: FaultPoint; count?: number; action: "exit" | "throw"; kill?: () => void }): FaultHook {
  if (!opts.enabled) throw new Error("fault hooks are refused unless MINT_TEST_FAULTS=true");
  let seen = 0;
  return (point) => {
    if (point !== opts.point) return;
    seen++;
    if (seen !== (opts.count ?? 1)) return;
    if (opts.action === "throw") throw new WorkerCrash(`test fault at ${point}`);
    (opts.kill ?? (() => process.kill(process.pid, "SIGKILL")))();
  };
}
