import * as fs from "fs";
import * as path from "path";

/** The repository's root, where the program's files are. */
const repoRoot = path.join(__dirname, "..");

/**
 * What a private copy of the program needs to run as `pulumi` runs it here
 * (the integration tests and the bench each deploy their own copies):
 * Pulumi.yaml's runtime options name runtime/preload.js.
 */
export const PROGRAM_FILES = ["Pulumi.yaml", "index.ts", "components", "runtime", "package.json", "tsconfig.json"];

/** Copies the program into `dir`, with the repository's node_modules linked, not copied. */
export function copyProgram(dir: string, files: string[] = PROGRAM_FILES): void {
  for (const file of files) fs.cpSync(path.join(repoRoot, file), path.join(dir, file), { recursive: true });
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
}
