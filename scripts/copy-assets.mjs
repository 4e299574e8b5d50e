// Copies the files the compiled server reads at run time (the descriptor set
// that reflection serves, written by `buf build`) next to the compiled code.
import { copyFileSync, mkdirSync } from "node:fs";
mkdirSync("dist/descriptors", { recursive: true });
copyFileSync("descriptors/descriptor.binpb", "dist/descriptors/descriptor.binpb");
// The mintctl executable (package.json "bin"); npm sets the mode on install, a local build needs it too.
import { chmodSync } from "node:fs";
chmodSync("dist/src/cli/main.js", 0o755);
