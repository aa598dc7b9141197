/** cli/options.ts: the one command-line rule every CLI here parses by. */
import { spawnSync } from "child_process";
import * as path from "path";

import { parseFlags, UsageError } from "../../cli/options";

const usage = "usage: tool [--stack NAME] [--all] [KEY]";
const types = { stack: "string", all: "boolean" } as const;

describe("parseFlags", () => {
  it("takes a string flag's value after a space or after '=', and a bare boolean flag", () => {
    expect(parseFlags(["--stack", "dev", "--all"], usage, types)).toEqual({ flags: { stack: "dev", all: true }, positionals: [] });
    expect(parseFlags(["--stack=dev"], usage, types).flags).toEqual({ stack: "dev" });
    // A value may start with '-': the CLIs have always taken the next argument as it is.
    expect(parseFlags(["--stack", "-x"], usage, types).flags).toEqual({ stack: "-x" });
  });

  it("returns positionals only where the command takes them", () => {
    expect(parseFlags(["repo:ctx", "--all"], usage, types, true)).toEqual({ flags: { all: true }, positionals: ["repo:ctx"] });
    expect(() => parseFlags(["repo:ctx"], usage, types)).toThrow(`unknown argument "repo:ctx"\n${usage}`);
  });

  it.each([
    [["--nope"], `unknown argument "--nope"`],
    [["--all=yes"], `unknown argument "--all=yes"`],
    [["-x"], `unknown argument "-x"`],
    [["--stack"], "--stack needs a value"],
    [["--stack="], "--stack needs a value"],
  ])("refuses %j: %s, with the usage", (argv, problem) => {
    expect(() => parseFlags(argv, usage, types)).toThrow(new UsageError(`${problem}\n${usage}`));
  });

  it.each([["-h"], ["--help"]])("%s shows the usage alone", (flag) => {
    expect(() => parseFlags([flag, "--nope"], usage, types)).toThrow(new UsageError(usage));
  });
});

describe("cli/route.ts and cli/buildx.ts parse by it", () => {
  // Started as npm starts them (scripts/run-ts.sh): node through runtime/preload.js.
  const root = path.resolve(__dirname, "../..");
  const run = (cli: string, ...args: string[]) =>
    spawnSync("node", ["-r", path.join(root, "runtime/preload.js"), path.join(root, "cli", cli), ...args], { cwd: root, encoding: "utf8" });

  it.each([
    ["route.ts", ["repo:ctx", "--stack=dev", "--from", "f.json"], "--stack and --from are alternatives"],
    ["route.ts", ["a:b", "c:d"], `one key only; got "a:b" and "c:d"`],
    ["route.ts", ["a:b", "--bogus"], `unknown argument "--bogus"`],
    ["buildx.ts", ["--tls-dir=/tmp/x", "--stack=dev", "--from", "f.json"], "--stack and --from are alternatives"],
    ["buildx.ts", ["--name"], "--name needs a value"],
  ])("%s %j: %s (exit 2)", (cli, args, problem) => {
    const result = run(cli, ...args);
    expect([result.status, result.stderr]).toEqual([2, expect.stringContaining(problem)]);
  });
});
