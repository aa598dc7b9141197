/**
 * The policy pack through the real CLI: `pulumi preview --policy-pack policy
 * --policy-pack-config policy/config.json`, as the workflows and `npm run up`
 * run it. Which stacks are production comes from that configuration, not from
 * the stack: the prod stack with `buildkit:production false` and an image on
 * `:master` (the bypasses of issue 18) is still refused. Per policy, a stack that breaks it is
 * rejected (non-zero exit, the policy's name and its message in the output)
 * and one that conforms passes. The violating stacks are a small fixture of
 * raw @pulumi/docker resources labelled like the component's (the real
 * program's config validation refuses most of these cases first); where the
 * config allows a violation (an unprotected production cache) the real program
 * is previewed too. Previews only: nothing is created on the engine.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { LABEL_PREFIX } from "../../components/core/config-keys";
import { CommandResult, createTestStack, mustRun, repoRoot, requireEngine, run, TestStack } from "./harness";

const POLICY_PACK = path.join(repoRoot, "policy");
/** The configuration the workflows and scripts/up.sh pass: prod is production. */
const POLICY_CONFIG = path.join(POLICY_PACK, "config.json");
const FIXTURE = path.join(__dirname, "fixtures", "policy-stack");
const PREVIEW_TIMEOUT_MS = 5 * 60 * 1000;

/** The pack's summary and violations, as `pulumi preview` prints them. */
function policySection(output: string): string {
  const start = output.indexOf("Policies:");
  return start < 0 ? "" : output.slice(start);
}

/** `pulumi preview` with the pack and a configuration (the repo's by default; null: none at all). */
function previewWithPack(cwd: string, stack: string, env: NodeJS.ProcessEnv, config: string | null = POLICY_CONFIG): CommandResult {
  const withConfig = config === null ? [] : ["--policy-pack-config", config];
  return run("pulumi", ["preview", "--non-interactive", "--stack", stack, "--policy-pack", POLICY_PACK, ...withConfig], { cwd, env });
}

/** A policy configuration naming `stacks` as production, for every production policy (the shape of policy/config.json). */
function configNaming(dir: string, stacks: string[]): string {
  const policies = Object.keys(JSON.parse(fs.readFileSync(POLICY_CONFIG, "utf8")));
  const file = path.join(dir, `policy-config-${stacks.join("-") || "none"}.json`);
  fs.writeFileSync(file, JSON.stringify(Object.fromEntries(policies.map((name) => [name, { productionStacks: stacks }]))));
  return file;
}

/** Expects a preview rejected by exactly this policy with exactly this message. */
function expectRejected(result: CommandResult, policy: string, message: string): void {
  const output = result.stdout + result.stderr;
  expect(result.code).not.toBe(0);
  const section = policySection(output);
  expect(section).toContain("❌ buildkit-stack@v0.1.0");
  expect(section).toMatch(new RegExp(`\\[mandatory\\]\\s+${policy}\\s`));
  expect(section).toContain(message);
  // Only the rule under test fires: the scenario breaks one thing.
  expect(section.match(/\[mandatory\]/g)).toHaveLength(1);
}

function expectPassed(result: CommandResult): void {
  const output = result.stdout + result.stderr;
  if (result.code !== 0) throw new Error(`preview failed (${result.code}):\n${output}`);
  expect(policySection(output)).toContain("✅ buildkit-stack@v0.1.0");
  expect(output).not.toContain("[mandatory]");
}

describe("policy pack through pulumi preview (raw docker fixture)", () => {
  const stackName = "pol-fixture";
  const prefix = "pol-fixture";
  let workDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    requireEngine();
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "pol-fixture-"));
    for (const file of fs.readdirSync(FIXTURE)) fs.copyFileSync(path.join(FIXTURE, file), path.join(workDir, file));
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(workDir, "node_modules"));
    fs.mkdirSync(path.join(workDir, ".state"));
    env = { ...process.env, PULUMI_BACKEND_URL: `file://${path.join(workDir, ".state")}`, PULUMI_CONFIG_PASSPHRASE: "integration-tests" };
    mustRun("pulumi", ["stack", "init", stackName, "--non-interactive"], { cwd: workDir, env });
    mustRun("pulumi", ["config", "set", "--stack", stackName, "pol:prefix", prefix], { cwd: workDir, env });
    mustRun("pulumi", ["config", "set", "--stack", stackName, "pol:labelPrefix", LABEL_PREFIX], { cwd: workDir, env });
  });

  afterAll(() => {
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  const preview = (scenario: string, config: string | null = POLICY_CONFIG): CommandResult => {
    mustRun("pulumi", ["config", "set", "--stack", stackName, "pol:scenario", scenario], { cwd: workDir, env });
    return previewWithPack(workDir, stackName, env, config);
  };

  // Also the conforming case of production-daemon-has-limits, production-image-pinned
  // (a release tag) and production-cache-protected (protect and retainOnDelete set).
  it("passes a production daemon that conforms to every rule", () => {
    expectPassed(preview("base"));
  }, PREVIEW_TIMEOUT_MS);

  describe("production-daemon-has-limits", () => {
    it("rejects a production daemon without memory and cpu limits", () => {
      expectRejected(
        preview("limits-violate"),
        "production-daemon-has-limits",
        `Production container ${prefix}-daemon has no memory and no cpus limit; set buildkit:memory and buildkit:cpus.`,
      );
    }, PREVIEW_TIMEOUT_MS);
    it("rejects a production daemon whose cpus is \"0.0\", the provider's spelling of no limit", () => {
      expectRejected(
        preview("limits-zero-cpus"),
        "production-daemon-has-limits",
        `Production container ${prefix}-daemon has no cpus limit (cpus "0.0" is no limit); set buildkit:cpus.`,
      );
    }, PREVIEW_TIMEOUT_MS);
    it("passes a development daemon without limits (the rule is for production)", () => {
      expectPassed(preview("limits-development"));
    }, PREVIEW_TIMEOUT_MS);
    it("rejects that same daemon when the configuration names its stack as production, whatever its label says", () => {
      expectRejected(
        preview("limits-development", configNaming(workDir, [stackName])),
        "production-daemon-has-limits",
        `Production container ${prefix}-daemon has no memory and no cpus limit; set buildkit:memory and buildkit:cpus.`,
      );
    }, PREVIEW_TIMEOUT_MS);
  });

  describe("production-image-pinned", () => {
    it("rejects moby/buildkit:latest in a production stack", () => {
      expectRejected(
        preview("pinned-violate"),
        "production-image-pinned",
        "Production image moby/buildkit:latest is not pinned; use a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless), such as moby/buildkit:v0.32.2.",
      );
    }, PREVIEW_TIMEOUT_MS);
    it.each(["master", "nightly"])("rejects moby/buildkit:%s, a tag that moves, in a production stack", (tag) => {
      expectRejected(
        preview(`pinned-${tag}`),
        "production-image-pinned",
        `Production image moby/buildkit:${tag} is not pinned; use a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless), such as moby/buildkit:v0.32.2.`,
      );
    }, PREVIEW_TIMEOUT_MS);
    it("passes an image pinned by digest", () => {
      expectPassed(preview("pinned-digest"));
    }, PREVIEW_TIMEOUT_MS);
    it("passes a pinned daemon beside a latest image no production container runs (the rule follows the container's image input)", () => {
      expectPassed(preview("pinned-unrelated"));
    }, PREVIEW_TIMEOUT_MS);
  });

  describe("production-cache-protected", () => {
    it("rejects a production cache volume that is not protected", () => {
      expectRejected(
        preview("cache-violate"),
        "production-cache-protected",
        `Production cache volume ${prefix}-cache is not protected; set buildkit:cacheProtected to true.`,
      );
    }, PREVIEW_TIMEOUT_MS);
  });

  describe("tcp-listener-requires-tls", () => {
    it("rejects a published TCP port without the TLS flags", () => {
      expectRejected(
        preview("tls-violate"),
        "tcp-listener-requires-tls",
        `Container ${prefix}-daemon publishes ports without TLS (missing --tlscacert, --tlscert, --tlskey); configure buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey.`,
      );
    }, PREVIEW_TIMEOUT_MS);
    it("passes a published TCP port with --tlscacert, --tlscert and --tlskey", () => {
      expectPassed(preview("tls-ok"));
    }, PREVIEW_TIMEOUT_MS);
  });

  it("refuses to judge without its configuration (it cannot tell which stacks are production)", () => {
    const result = preview("base", null);
    expect(result.code).not.toBe(0);
    // The CLI checks the pack's config schema (productionStacks is required) before any policy runs.
    for (const policy of ["production-daemon-has-limits", "production-image-pinned", "production-cache-protected"]) {
      expect(result.stdout + result.stderr).toContain(`error: validating policy config: buildkit-stack 0.1.0  ${policy}: productionStacks is required`);
    }
  }, PREVIEW_TIMEOUT_MS);

  describe("privileged-only-where-allowed", () => {
    it("rejects a privileged daemon whose allow-privileged label is false", () => {
      expectRejected(
        preview("privileged-violate"),
        "privileged-only-where-allowed",
        `Container ${prefix}-daemon is privileged but its stack does not allow it; set buildkit:rootless to true, or buildkit:allowPrivileged to true.`,
      );
    }, PREVIEW_TIMEOUT_MS);
    it("passes an unprivileged daemon whose allow-privileged label is false", () => {
      expectPassed(preview("privileged-ok"));
    }, PREVIEW_TIMEOUT_MS);
  });
});

describe("policy pack through pulumi preview (the real program)", () => {
  let testStack: TestStack | undefined;

  afterEach(async () => {
    await testStack?.cleanup();
    testStack = undefined;
  }, PREVIEW_TIMEOUT_MS);

  it("passes the repo's dev stack file as it is (the PR workflow previews it with the pack)", async () => {
    testStack = await createTestStack("pol-dev", {}, { fromStackFile: "dev" });
    expectPassed(previewWithPack(testStack.workDir, "pol-dev", testStack.env));
  }, PREVIEW_TIMEOUT_MS);

  it("passes the repo's prod stack file as it is", async () => {
    testStack = await createTestStack("pol-prod", {}, { fromStackFile: "prod" });
    expectPassed(previewWithPack(testStack.workDir, "pol-prod", testStack.env));
  }, PREVIEW_TIMEOUT_MS);

  // Issue 18: a pull request that relabels prod as development and moves it to a branch tag. The stack is named
  // prod, as the workflows' stack is, and previewed with the configuration they pass.
  it("judges the stack named prod as production with buildkit:production false, and refuses its :master image", async () => {
    testStack = await createTestStack("prod", { production: "false", image: "moby/buildkit:master" }, { fromStackFile: "prod" });
    expectRejected(
      previewWithPack(testStack.workDir, "prod", testStack.env),
      "production-image-pinned",
      "Production image moby/buildkit:master is not pinned; use a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless), such as moby/buildkit:v0.32.2.",
    );
  }, PREVIEW_TIMEOUT_MS);

  it("rejects the prod stack file with buildkit:cacheProtected false (config allows it, policy does not)", async () => {
    testStack = await createTestStack("pol-prod-unprotected", { cacheProtected: "false" }, { fromStackFile: "prod" });
    expectRejected(
      previewWithPack(testStack.workDir, "pol-prod-unprotected", testStack.env),
      "production-cache-protected",
      "Production cache volume buildkit-pol-prod-unprotected-cache is not protected; set buildkit:cacheProtected to true.",
    );
  }, PREVIEW_TIMEOUT_MS);
});
