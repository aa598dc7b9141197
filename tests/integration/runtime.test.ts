/**
 * The real CLI and language host start the program the way Pulumi.yaml says:
 * through runtime/preload.js, not ts-node. Until the host read the runtime
 * options this CLI sends with each request (scripts/provision/language-nodejs/
 * run_options.go), it silently ran every program on ts-node with no nodeargs,
 * whatever Pulumi.yaml said. A copy of the program, with the repository's own
 * Pulumi.yaml, has its index.ts replaced by a probe that reports how its node
 * process was started; no engine is needed.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { readSpans } from "../../bench/trace";
import { copyProgram } from "../../runtime/program-files";
import { DEPLOY_TIMEOUT_MS, mustRun } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const PROBE = `
const loaded = (fragment: string) => Object.keys(require.cache).some((id) => id.includes(fragment));
export const execArgv = process.execArgv;
export const tsNode = Symbol.for("ts-node.register.instance") in process;
export const typescriptCompiler = loaded("/typescript/lib/typescript.js");
export const sourceMapSupport = loaded("/source-map-support/source-map-support.js");
export const typescriptLoader = require.extensions[".ts"]?.name ?? "none";
`;

describe("the language host", () => {
  let workDir: string;
  let env: NodeJS.ProcessEnv;
  const pulumi = (args: string[]) => mustRun("pulumi", args, { cwd: workDir, env });

  beforeAll(() => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-runtime-"));
    copyProgram(workDir);
    fs.writeFileSync(path.join(workDir, "index.ts"), PROBE);
    fs.mkdirSync(path.join(workDir, ".state"));
    env = { ...process.env, PULUMI_BACKEND_URL: `file://${workDir}/.state`, PULUMI_CONFIG_PASSPHRASE: "integration-tests" };
    pulumi(["stack", "init", "runtime"]);
  });
  afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

  it("starts the program with Pulumi.yaml's runtime options: the preload, not ts-node", () => {
    const trace = path.join(workDir, "trace.json");
    pulumi(["up", "--yes", "--skip-preview", "--otel-traces", `file://${trace}`]);
    const outputs = JSON.parse(pulumi(["stack", "output", "--json"])) as Record<string, unknown>;
    expect(outputs).toEqual({
      execArgv: ["--require", "./runtime/preload.js"],
      tsNode: false,
      typescriptCompiler: false,
      sourceMapSupport: false,
      typescriptLoader: "loadTypeScript",
    });

    // The host found @pulumi/pulumi's program runner without starting node to ask (upstream's
    // locateModule span), and launched node with exactly the nodeargs before the runner.
    const spans = readSpans(trace);
    expect(spans.filter((s) => s.name === "locateModule")).toEqual([]);
    const launch = spans.find((s) => s.name === "execNodejs");
    expect(launch?.attributes.args).toMatch(/^\[--require \.\/runtime\/preload\.js \S+\/@pulumi\/pulumi\/cmd\/run\/index\.js /);
  });
});
