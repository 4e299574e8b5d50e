// Copies the files the compiled server reads at run time (the descriptor set
// that reflection serves, written by `buf build`) next to the compiled code.
import { copyFileSync, mkdirSync } from "node:fs";
mkdirSync("dist/descriptors", { recursive: true });
copyFileSync("descriptors/descriptor.binpb", "dist/descriptors/descriptor.binpb");
