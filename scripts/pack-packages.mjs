// Builds and packs the packages a user installs without the server:
// @usdc-mint/client (packages/client) and @usdc-mint/mintctl (packages/mintctl).
//
//   npm run pack:packages              # tarballs into dist/packages/
//   npm run pack:packages -- DIR       # tarballs into DIR
//
// Prints one JSON line: {"client": "<path>.tgz", "mintctl": "<path>.tgz"}.
// Each package's `prepack` compiles it with the repository's TypeScript.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dest = resolve(process.argv[2] ?? join(root, "dist/packages"));
mkdirSync(dest, { recursive: true });

const out = {};
for (const name of ["client", "mintctl"]) {
  const json = execFileSync("npm", ["pack", "--json", "--pack-destination", dest], {
    cwd: join(root, "packages", name),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, npm_config_update_notifier: "false" },
  });
  // npm prints the prepack script's output before the JSON document.
  const [info] = JSON.parse(json.slice(json.indexOf("[")));
  out[name] = join(dest, info.filename);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
