/**
 * How node runs the program and the project's TypeScript tools: through
 * sucrase with V8's code cache, not ts-node (README "Performance"). The bench's
 * floors must run the same way, or its ratios would compare different starts.
 */
import * as fs from "fs";
import * as path from "path";

import { load as parseYaml } from "js-yaml";

const root = path.join(__dirname, "..");
const NODEARGS = "--require v8-compile-cache --require sucrase/register/ts";

function runtimeOptions(file: string): Record<string, unknown> {
  const project = parseYaml(fs.readFileSync(path.join(root, file), "utf8")) as { runtime: { options: Record<string, unknown> } };
  return project.runtime.options;
}

describe("the program's runtime", () => {
  it.each(["Pulumi.yaml", "bench/empty/Pulumi.yaml", "bench/minimal/Pulumi.yaml"])("%s runs TypeScript through sucrase with the code cache", (file) => {
    expect(runtimeOptions(file)).toEqual({ typescript: false, nodeargs: NODEARGS });
  });

  it("preloads modules the project depends on (not only devDependencies) and that resolve from it", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const module of ["v8-compile-cache", "sucrase/register/ts"]) {
      expect(pkg.dependencies[module.split("/")[0]]).toBeDefined();
      expect(() => require.resolve(module, { paths: [root] })).not.toThrow();
    }
  });

  it("runs the CLIs the same way (scripts/run-ts.sh)", () => {
    expect(fs.readFileSync(path.join(root, "scripts/run-ts.sh"), "utf8")).toContain('exec node -r v8-compile-cache -r sucrase/register/ts "$root/$script"');
  });
});
