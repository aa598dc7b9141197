/**
 * cli/pulumi-cli.ts: the CLIs' PulumiCommand comes from the `pulumi version`
 * started early, and is what the Automation API would have made itself; a
 * `pulumi` that answers no Pulumi 3 version is left to the Automation API's
 * own check. The early export is the named stack's, taken once.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { LocalWorkspace } from "@pulumi/pulumi/automation";

/** The module loaded afresh (its `pulumi version` starts at load) with `pulumi` looked up on `PATH`. */
async function loadWithPath(pathValue: string): Promise<typeof import("../../cli/pulumi-cli")> {
  const saved = process.env.PATH;
  process.env.PATH = pathValue;
  try {
    let loaded: typeof import("../../cli/pulumi-cli") | undefined;
    jest.isolateModules(() => {
      loaded = require("../../cli/pulumi-cli");
    });
    return loaded!;
  } finally {
    process.env.PATH = saved;
  }
}

describe("pulumiCli", () => {
  it("is the CLI on PATH with the version it reports, and a workspace runs with it", async () => {
    const reported = execFileSync("pulumi", ["version"], { encoding: "utf8" }).trim().replace(/^v/, "");
    const { pulumiCli } = await loadWithPath(process.env.PATH ?? "");
    const cli = await pulumiCli();
    expect(cli.command).toBe("pulumi");
    expect(cli.version?.toString()).toBe(reported);

    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-cli-"));
    try {
      const workspace = await LocalWorkspace.create({ workDir, pulumiCommand: cli });
      expect(workspace.pulumiVersion).toBe(reported);
      expect((await workspace.whoAmI()).user).toBeTruthy();
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });

  it("leaves a pulumi that reports no Pulumi 3 version to the Automation API's own check", async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-cli-bin-"));
    try {
      fs.writeFileSync(path.join(bin, "pulumi"), "#!/bin/sh\necho v2.25.2\n", { mode: 0o755 });
      const { pulumiCli } = await loadWithPath(`${bin}:${process.env.PATH}`);
      const saved = process.env.PATH;
      process.env.PATH = `${bin}:${saved}`;
      try {
        await expect(pulumiCli()).rejects.toThrow(/Minimum version requirement failed.*2\.25\.2/);
      } finally {
        process.env.PATH = saved;
      }
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe("earlyExport", () => {
  let dir: string;
  const saved = { ...process.env };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-cli-export-"));
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: early\nruntime: nodejs\n");
    fs.mkdirSync(path.join(dir, "state"));
    process.env.PULUMI_BACKEND_URL = `file://${dir}/state`;
    process.env.PULUMI_CONFIG_PASSPHRASE = "unit";
    execFileSync("pulumi", ["stack", "init", "early"], { cwd: dir, env: process.env, stdio: "pipe" });
  });
  afterAll(() => {
    process.env.PULUMI_BACKEND_URL = saved.PULUMI_BACKEND_URL;
    process.env.PULUMI_CONFIG_PASSPHRASE = saved.PULUMI_CONFIG_PASSPHRASE;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("is the named stack's deployment as pulumi stack export prints it, handed out once", async () => {
    const { startPulumiEarly, earlyExport } = await loadWithPath(process.env.PATH ?? "");
    startPulumiEarly(["--stack", "early", "--cwd", dir]);
    expect(earlyExport("other", dir)).toBeUndefined();
    const exported = (await earlyExport("early", dir)) as { version: number; deployment: Record<string, unknown> };
    expect(exported.version).toBeGreaterThanOrEqual(3);
    expect(exported.deployment).toBeDefined();
    expect(earlyExport("early", dir)).toBeUndefined();
  });

  it("starts no export for a command line the CLI will refuse, and a failed export fails when taken", async () => {
    const { startPulumiEarly, earlyExport } = await loadWithPath(process.env.PATH ?? "");
    startPulumiEarly(["--stack", "early", "--bogus"]);
    expect(earlyExport("early", dir)).toBeUndefined();
    startPulumiEarly(["--stack", "missing", "--cwd", dir]);
    await expect(earlyExport("missing", dir)).rejects.toThrow(/pulumi stack export --stack missing exited \d+: .*missing/);
  });
});
