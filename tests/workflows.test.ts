/**
 * The GitHub workflows lint clean with actionlint (built from the Go module
 * proxy by scripts/provision/tools.sh): syntax, expressions, matrix and
 * secrets references, runner labels, action inputs.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const root = path.resolve(__dirname, "..");
const workflowsDir = path.join(root, ".github", "workflows");

describe("the GitHub workflows", () => {
  it("are the preview, drift and deploy workflows", () => {
    expect(fs.readdirSync(workflowsDir).sort()).toEqual(["deploy.yml", "drift.yml", "preview.yml"]);
  });

  it("pass actionlint with no findings", () => {
    const files = fs.readdirSync(workflowsDir).map((f) => path.join(".github", "workflows", f));
    const result = spawnSync("actionlint", ["-no-color", ...files], { cwd: root, encoding: "utf8" });
    if (result.error) {
      throw new Error(
        `actionlint is not on PATH (${result.error.message}). Fix: \`bash scripts/provision/tools.sh\` ` +
          "(or `bash scripts/provision.sh`), then `source scripts/env.sh` so $BUILDKIT_STACK_CACHE/bin is on PATH; `npm test` does both.",
      );
    }
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
