// Copies the files the compiled server reads at run time (the descriptor set
// that reflection serves) next to the compiled code.
import { copyFileSync, mkdirSync } from "node:fs";
mkdirSync("dist/gen", { recursive: true });
copyFileSync("gen/descriptor.binpb", "dist/gen/descriptor.binpb");
