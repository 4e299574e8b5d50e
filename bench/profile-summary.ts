/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile`
 * which writes bench/profiles/service-<comparison>.cpuprofile): self time by
 * function and by file/package, and total (inclusive) time of the service's
 * own functions, so hot spots can be named with evidence.
 *
 *   node --import tsx bench/profile-summary.ts bench/profiles/service-mint-c64.cpuprofile [top]
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, topText] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write("usage: profile-summary.ts <file.cpuprofile> [top]\n");
  process.exit(2);
}
const top = Number(topText ?? 25);
const prof = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from samples and time deltas (µs).
const selfUs = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i] as number;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
// Percentages are of busy time: the service idles while the baseline runs.
let idleUs = 0;
for (const [id, us] of selfUs) if ((byId.get(id) as Node).callFrame.functionName === "(idle)") idleUs += us;
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0) - idleUs;

function where(url: string): string {
  if (url === "") return "(native/V8)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return (rest[0] as string).startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] as string);
  }
  if (url.startsWith("node:")) return url;
  const m = /\/(dist\/)?(src|gen|bench)\/(.*)$/.exec(url);
  return m !== null ? `${m[2]}/${m[3]}` : url;
}

const label = (n: Node): string => `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const selfByFn = new Map<string, number>();
const selfByFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id) as Node;
  if (n.callFrame.functionName === "(idle)") continue;
  selfByFn.set(label(n), (selfByFn.get(label(n)) ?? 0) + us);
  const f = where(n.callFrame.url);
  selfByFile.set(f, (selfByFile.get(f) ?? 0) + us);
}

// Inclusive time per function label (each sample counted once per label on its stack).
const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  if ((byId.get(id) as Node).callFrame.functionName === "(idle)") continue;
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur) as Node);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + us);
  }
}

const pct = (us: number): string => ((us / totalUs) * 100).toFixed(1).padStart(5) + "%";
const print = (title: string, m: Map<string, number>, filter: (k: string) => boolean = () => true): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(us)}  ${k}\n`);
};
process.stdout.write(`${file}: ${(totalUs / 1e6).toFixed(2)} s busy (+ ${(idleUs / 1e6).toFixed(2)} s idle); percentages of busy time\n`);
print("self time by file / package", selfByFile);
print("self time by function", selfByFn);
print("inclusive time of the service's own functions (src/)", inclusive, (k) => / src\//.test(k));
