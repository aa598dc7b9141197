/**
 * runtime/preload.js: how node starts the program and the CLIs. Each case
 * runs a fresh node process with the preload, as Pulumi.yaml's nodeargs and
 * scripts/run-ts.sh do, and reads what that process loaded. That the
 * language host really starts the program this way is shown against the real
 * CLI in tests/integration/runtime.test.ts.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { load as parseYaml } from "js-yaml";

const root = path.join(__dirname, "../..");
const PRELOAD = path.join(root, "runtime/preload.js");
const NODEARGS = "--require ./runtime/preload.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "preload-"));
  fs.symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs `file` in node with the preload (from the repository, so node_modules resolves) and parses its JSON output. */
function runWithPreload(file: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ["--require", PRELOAD, file], { cwd: root, encoding: "utf8" });
  return JSON.parse(out) as Record<string, unknown>;
}

/** True when a file whose path contains `fragment` was loaded into the process. */
const LOADED = `(fragment) => Object.keys(require.cache).some((id) => id.includes(fragment) && require.cache[id].filename === id)`;

/** A TypeScript program unique to this run (so the first run finds nothing cached) that reports what it loaded. */
function writeProgram(body: string): string {
  const file = path.join(dir, "program.ts");
  fs.writeFileSync(
    file,
    [
      `// ${crypto.randomUUID()}`,
      `interface Shape { value: number }`,
      `const loaded = ${LOADED};`,
      `const shape: Shape = { value: 1 };`,
      body,
      "",
    ].join("\n"),
  );
  return file;
}

describe("runtime/preload.js", () => {
  it("runs TypeScript, and from the second start on without loading sucrase, also from a copy elsewhere", () => {
    const file = writeProgram(`console.log(JSON.stringify({ value: shape.value, sucrase: loaded("/sucrase/dist/index.js") }));`);
    expect(runWithPreload(file)).toEqual({ value: 1, sucrase: true });
    expect(runWithPreload(file)).toEqual({ value: 1, sucrase: false });
    // The tests and the bench run copies of the program: the same bytes elsewhere are the same entry.
    const copy = path.join(dir, "copy", "program.ts");
    fs.mkdirSync(path.dirname(copy));
    fs.copyFileSync(file, copy);
    expect(runWithPreload(copy)).toEqual({ value: 1, sucrase: false });
  });

  it("runs an edited file as edited, never a stale transform", () => {
    const file = writeProgram(`console.log(JSON.stringify({ value: shape.value }));`);
    expect(runWithPreload(file)).toEqual({ value: 1 });
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("value: 1 }", "value: 2 }"));
    expect(runWithPreload(file)).toEqual({ value: 2 });
  });

  it("keeps each line of a .ts file where it was, so stack traces point at the source", () => {
    const file = writeProgram(`const where = new Error().stack!.split("\\n")[1];\nconsole.log(JSON.stringify({ where }));`);
    const line = fs.readFileSync(file, "utf8").split("\n").findIndex((l) => l.includes("new Error()")) + 1;
    expect(runWithPreload(file).where).toContain(`${file}:${line}:`);
  });

  it("loads @pulumi/pulumi without the TypeScript compiler, which still loads when a function is serialized", () => {
    const file = writeProgram(
      [
        `import * as pulumi from "@pulumi/pulumi";`,
        `const atStart = loaded("/typescript/lib/typescript.js");`,
        `pulumi.runtime.serializeFunction(() => shape.value).then((serialized) => {`,
        `  console.log(JSON.stringify({ atStart, afterSerializing: loaded("/typescript/lib/typescript.js"), serialized: serialized.text.includes("shape") }));`,
        `});`,
      ].join("\n"),
    );
    expect(runWithPreload(file)).toEqual({ atStart: false, afterSerializing: true, serialized: true });
  });

  it("keeps source-map-support out of the SDK's program runner", () => {
    const file = writeProgram(
      [
        `const sdk = require("path").dirname(require.resolve("@pulumi/pulumi/package.json"));`,
        `require(require.resolve("source-map-support/register", { paths: [sdk] }));`,
        `console.log(JSON.stringify({ installed: loaded("/source-map-support/source-map-support.js") }));`,
      ].join("\n"),
    );
    expect(runWithPreload(file)).toEqual({ installed: false });
  });

  it.each(["Pulumi.yaml", "bench/empty/Pulumi.yaml", "bench/minimal/Pulumi.yaml"])("is how %s runs (the bench's floors start like the program)", (file) => {
    const project = parseYaml(fs.readFileSync(path.join(root, file), "utf8")) as { runtime: { options: Record<string, unknown> } };
    expect(project.runtime.options).toEqual({ typescript: false, nodeargs: NODEARGS });
  });

  it("is how the CLIs run (scripts/run-ts.sh)", () => {
    expect(fs.readFileSync(path.join(root, "scripts/run-ts.sh"), "utf8")).toContain('exec node -r "$root/runtime/preload.js" "$root/$script"');
  });

  it("needs only what package.json's dependencies provide", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const module of ["v8-compile-cache", "sucrase", "@pulumi/pulumi"]) expect(pkg.dependencies[module]).toBeDefined();
  });
});
