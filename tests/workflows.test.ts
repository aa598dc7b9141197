/**
 * The GitHub workflows lint clean with actionlint (built from the Go module
 * proxy by scripts/provision/tools.sh): syntax, expressions, matrix and
 * secrets references, runner labels, action inputs, and (through shellcheck)
 * the `run:` scripts.
 */
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const root = path.resolve(__dirname, "..");
const workflowsDir = path.join(root, ".github", "workflows");

/** Runs a provisioned tool; a missing binary fails loudly, with the fix. */
function tool(name: string, args: string[], cwd = root): SpawnSyncReturns<string> {
  const result = spawnSync(name, args, { cwd, encoding: "utf8" });
  if (result.error) {
    throw new Error(
      `${name} is not on PATH (${result.error.message}). Fix: \`bash scripts/provision/tools.sh\` ` +
        "(or `bash scripts/provision.sh`), then `source scripts/env.sh` so $BUILDKIT_STACK_CACHE/bin is on PATH; `npm test` does both.",
    );
  }
  return result;
}

describe("the GitHub workflows", () => {
  it("are the preview, drift and deploy workflows", () => {
    expect(fs.readdirSync(workflowsDir).sort()).toEqual(["deploy.yml", "drift.yml", "preview.yml"]);
  });

  it("are linted with shellcheck too (actionlint skips `run:` scripts without it)", () => {
    expect(tool("shellcheck", ["--version"]).status).toBe(0);
  });

  it("would be caught: actionlint reports a misspelt pulumi/actions input and an unquoted variable", () => {
    // What a clean run means: the action's inputs and the run: scripts are really checked.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "actionlint-"));
    try {
      const bad = ["on: push", "jobs:", "  a:", "    runs-on: ubuntu-latest", "    steps:", "      - uses: pulumi/actions@v6", "        with:", "          policy-packs: policy", "      - run: echo $STACK", ""];
      fs.writeFileSync(path.join(dir, "bad.yml"), bad.join("\n"));
      const result = tool("actionlint", ["-no-color", "bad.yml"], dir);
      expect(result.status).toBe(1);
      expect(result.stdout).toContain('input "policy-packs" is not defined in action "pulumi/actions@v6"');
      expect(result.stdout).toContain("SC2086");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pass actionlint with no findings", () => {
    const files = fs.readdirSync(workflowsDir).map((f) => path.join(".github", "workflows", f));
    const result = tool("actionlint", ["-no-color", ...files]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
