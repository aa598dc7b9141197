/** The GitHub workflows lint clean with actionlint (provisioned by scripts/provision/tools.sh). */
import { spawnSync } from "child_process";
import * as path from "path";

describe("the GitHub workflows", () => {
  it("pass actionlint with no findings", () => {
    const root = path.resolve(__dirname, "..");
    const result = spawnSync("actionlint", ["-no-color"], { cwd: root, encoding: "utf8" });
    if (result.error) {
      throw new Error(`actionlint is not on PATH (${result.error.message}); run \`bash scripts/provision.sh\` and \`source scripts/env.sh\`, or use \`npm test\`.`);
    }
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});
