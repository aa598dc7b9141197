/**
 * The GitHub workflows lint clean with actionlint (built from the Go module
 * proxy by scripts/provision/tools.sh): syntax, expressions, matrix and
 * secrets references, runner labels, action inputs, and (through shellcheck)
 * the `run:` scripts. And they hand credentials only to trusted or approved
 * jobs: the rules are in `trustFindings`, the protection each environment has
 * in GitHub's settings is declared in .github/environments.yml, and the
 * preview workflow as it was before issue 9 is kept as a fixture that the
 * rules must catch.
 */
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import * as yaml from "js-yaml";

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

// ---------------------------------------------------------------------------
// Trust: which jobs may hold credentials, and on whose code they run.
// ---------------------------------------------------------------------------

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Concurrency {
  group?: string;
  "cancel-in-progress"?: boolean | string;
}
interface Job {
  environment?: string | { name: string };
  env?: Record<string, unknown>;
  steps?: Step[];
  needs?: string | string[];
  concurrency?: string | Concurrency;
}
interface Workflow {
  on: string | string[] | Record<string, unknown>;
  jobs: Record<string, Job>;
  concurrency?: string | Concurrency;
}
/** One entry of .github/environments.yml: the protection an admin configures in GitHub's settings. */
interface EnvironmentRule {
  stack: string;
  required_reviewers: boolean;
  deployment_branches: "any" | string[];
  secrets: string[];
}
type Environments = Record<string, EnvironmentRule>;

const environmentsFile = path.join(root, ".github", "environments.yml");
const oldPreviewFixture = path.join(__dirname, "fixtures", "workflows", "preview-before-issue-9.yml");

function readYaml<T>(file: string): T {
  return yaml.load(fs.readFileSync(file, "utf8")) as T;
}
function declaredEnvironments(): Environments {
  return readYaml<{ environments: Environments }>(environmentsFile).environments;
}
function repoWorkflows(): Record<string, Workflow> {
  return Object.fromEntries(fs.readdirSync(workflowsDir).map((f) => [f, readYaml<Workflow>(path.join(workflowsDir, f))]));
}

function triggers(workflow: Workflow): string[] {
  if (typeof workflow.on === "string") return [workflow.on];
  return Array.isArray(workflow.on) ? workflow.on : Object.keys(workflow.on);
}

/** A checkout ref (or script) that fetches the pull request's head rather than the base branch's code. */
const PR_HEAD_REF = /github\.event\.pull_request\.head|github\.head_ref|github\.event\.workflow_run\.head|refs\/pull\/|gh pr checkout/;

/**
 * Why this job runs code a pull-request author wrote, or undefined. Under
 * `pull_request` every job does (the workflow files themselves come from the
 * PR). Under the base-context events (`pull_request_target`, `workflow_run`,
 * `issue_comment`) a job does when it checks out the PR's head.
 */
function untrustedCode(workflow: Workflow, job: Job): string | undefined {
  const events = triggers(workflow);
  if (events.includes("pull_request")) return "on: pull_request";
  const baseContext = events.filter((e) => ["pull_request_target", "workflow_run", "issue_comment"].includes(e));
  if (baseContext.length === 0) return undefined;
  const fetchesHead = (job.steps ?? []).some((step) => PR_HEAD_REF.test(JSON.stringify(step.with ?? {})) || PR_HEAD_REF.test(step.run ?? ""));
  return fetchesHead ? `on: ${baseContext.join(", ")} with the PR's head checked out` : undefined;
}

/** Every secret a job references, by name (`secrets[...]` expressions verbatim, `secrets: inherit` as such). */
function secretsOf(job: Job): string[] {
  const text = JSON.stringify(job);
  const names = [...text.matchAll(/secrets\.([A-Za-z_][A-Za-z0-9_]*)|(secrets\[[^\]]*\])/g)].map((m) => (m[1] ? `secrets.${m[1]}` : m[2]));
  if (/"secrets":"inherit"/.test(text)) names.push("secrets: inherit");
  return [...new Set(names)];
}

function environmentOf(job: Job): string | undefined {
  return typeof job.environment === "string" ? job.environment : job.environment?.name;
}

/**
 * What is wrong with these workflows' use of credentials, one sentence per
 * finding; [] when nothing is. The rules:
 * - a job that runs pull-request code and references a secret or a production
 *   environment must name an environment with required reviewers;
 * - a job's environment is declared in .github/environments.yml (GitHub
 *   creates an unknown name on the fly, unprotected), literally (a name
 *   computed at run time cannot be checked);
 * - every secret but GITHUB_TOKEN comes from the job's environment: a
 *   repository secret is readable by any workflow a branch adds;
 * - an environment without reviewers is limited to main.
 */
function trustFindings(workflows: Record<string, Workflow>, environments: Environments): string[] {
  const findings: string[] = [];
  for (const [name, rule] of Object.entries(environments)) {
    const mainOnly = Array.isArray(rule.deployment_branches) && rule.deployment_branches.length === 1 && rule.deployment_branches[0] === "main";
    if (!rule.required_reviewers && !mainOnly) {
      findings.push(`environment ${name} has neither required reviewers nor deployment branches limited to main: any branch's workflow can take its secrets`);
    }
  }
  for (const [file, workflow] of Object.entries(workflows)) {
    for (const [id, job] of Object.entries(workflow.jobs)) {
      const where = `${file} job ${id}`;
      const environment = environmentOf(job);
      const rule = environment === undefined ? undefined : environments[environment];
      if (environment !== undefined && environment.includes("${{")) {
        findings.push(`${where}: environment "${environment}" is computed at run time; name it literally so its protection can be checked`);
      } else if (environment !== undefined && !rule) {
        findings.push(`${where}: environment "${environment}" is not declared in .github/environments.yml (GitHub creates unknown environments unprotected)`);
      }
      const secrets = secretsOf(job);
      const production = environment !== undefined && (rule?.stack === "prod" || /prod/i.test(environment));
      const reason = untrustedCode(workflow, job);
      if (reason && (secrets.length > 0 || production) && !rule?.required_reviewers) {
        const holds = [...secrets, ...(production ? [`environment ${environment}`] : [])].join(", ");
        findings.push(`${where} runs pull-request code (${reason}) with ${holds} and no approval environment`);
      }
      for (const secret of secrets.filter((s) => s !== "secrets.GITHUB_TOKEN")) {
        if (!rule?.secrets.includes(secret.replace(/^secrets\./, ""))) {
          findings.push(`${where} uses ${secret}, which its environment (${environment ?? "none"}) does not hold: a repository secret, readable by any workflow a branch adds`);
        }
      }
    }
  }
  return findings;
}

/** Whether Pulumi's passphrase secrets provider accepts `passphrase` for a stack file's `encryptionsalt` (v1: PBKDF2-SHA256, AES-256-GCM over "pulumi"). */
function saltOpensWith(encryptionSalt: string, passphrase: string): boolean {
  const [version, salt, innerVersion, nonce, sealed] = encryptionSalt.split(":");
  if (version !== "v1" || innerVersion !== "v1") throw new Error(`unknown encryptionsalt format: ${encryptionSalt}`);
  const key = crypto.pbkdf2Sync(passphrase, Buffer.from(salt, "base64"), 1_000_000, 32, "sha256");
  const box = Buffer.from(sealed, "base64");
  const decipher = crypto.createDecipheriv("aes-256-gcm", key, Buffer.from(nonce, "base64"));
  decipher.setAuthTag(box.subarray(box.length - 16));
  try {
    return Buffer.concat([decipher.update(box.subarray(0, box.length - 16)), decipher.final()]).toString() === "pulumi";
  } catch {
    return false;
  }
}

/** Jobs that act on a Pulumi stack, with the stack they name in `env.STACK`. */
function stackJobs(): { where: string; job: Job; stack: unknown }[] {
  const jobs: { where: string; job: Job; stack: unknown }[] = [];
  for (const [file, workflow] of Object.entries(repoWorkflows())) {
    for (const [id, job] of Object.entries(workflow.jobs)) {
      const touchesStack = (job.steps ?? []).some((s) => s.with?.["stack-name"] !== undefined || /npm run drift/.test(s.run ?? ""));
      if (touchesStack) jobs.push({ where: `${file} job ${id}`, job, stack: job.env?.STACK });
    }
  }
  return jobs;
}

describe("credentials in the workflows", () => {
  it("are only handed to pull-request code after an approval, only from declared, protected environments", () => {
    expect(trustFindings(repoWorkflows(), declaredEnvironments())).toEqual([]);
  });

  it("would be caught: the preview workflow before issue 9 ran PR code with the prod passphrase and host", () => {
    const findings = trustFindings({ "preview.yml": readYaml<Workflow>(oldPreviewFixture) }, declaredEnvironments());
    expect(findings).toEqual([
      "preview.yml job preview runs pull-request code (on: pull_request) with secrets.GITHUB_TOKEN, secrets.PULUMI_CONFIG_PASSPHRASE, secrets[format('DOCKER_HOST_{0}', matrix.stack)] and no approval environment",
      "preview.yml job preview uses secrets.PULUMI_CONFIG_PASSPHRASE, which its environment (none) does not hold: a repository secret, readable by any workflow a branch adds",
      "preview.yml job preview uses secrets[format('DOCKER_HOST_{0}', matrix.stack)], which its environment (none) does not hold: a repository secret, readable by any workflow a branch adds",
    ]);
  });

  it("would be caught: pull_request_target checking out the PR's head into an environment without reviewers", () => {
    const pwnRequest = yaml.load(
      [
        "on: pull_request_target",
        "jobs:",
        "  preview:",
        "    runs-on: ubuntu-latest",
        "    environment: production-drift",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "        with:",
        "          ref: ${{ github.event.pull_request.head.sha }}",
        "      - run: npm ci && pulumi preview",
        "        env:",
        "          DOCKER_HOST: ${{ secrets.DOCKER_HOST }}",
      ].join("\n"),
    ) as Workflow;
    expect(trustFindings({ "pwn.yml": pwnRequest }, declaredEnvironments())).toEqual([
      "pwn.yml job preview runs pull-request code (on: pull_request_target with the PR's head checked out) with secrets.DOCKER_HOST, environment production-drift and no approval environment",
    ]);
    // The base branch's code under pull_request_target, in the same environment, is not PR code.
    delete pwnRequest.jobs.preview.steps![0].with;
    expect(trustFindings({ "base.yml": pwnRequest }, declaredEnvironments())).toEqual([]);
  });

  it("would be caught: a production environment on PR code even without a secret, an undeclared or computed environment, an unprotected one", () => {
    const workflow = yaml.load(
      [
        "on: pull_request",
        "jobs:",
        "  a: { runs-on: ubuntu-latest, environment: production-drift, steps: [ { run: 'true' } ] }",
        "  b: { runs-on: ubuntu-latest, environment: staging, steps: [ { run: 'true' } ] }",
        "  c: { runs-on: ubuntu-latest, environment: 'preview-${{ matrix.stack }}', steps: [ { run: 'true' } ] }",
        "  d: { runs-on: ubuntu-latest, environment: { name: preview-prod }, steps: [ { run: 'echo ${{ secrets.DOCKER_HOST }}' } ] }",
      ].join("\n"),
    ) as Workflow;
    const environments = { ...declaredEnvironments(), open: { stack: "dev", required_reviewers: false, deployment_branches: "any" as const, secrets: [] } };
    expect(trustFindings({ "w.yml": workflow }, environments)).toEqual([
      "environment open has neither required reviewers nor deployment branches limited to main: any branch's workflow can take its secrets",
      "w.yml job a runs pull-request code (on: pull_request) with environment production-drift and no approval environment",
      'w.yml job b: environment "staging" is not declared in .github/environments.yml (GitHub creates unknown environments unprotected)',
      'w.yml job c: environment "preview-${{ matrix.stack }}" is computed at run time; name it literally so its protection can be checked',
    ]);
  });

  describe("the passphrase", () => {
    const devStackFile = readYaml<{ config: Record<string, unknown>; encryptionsalt: string }>(path.join(root, "Pulumi.dev.yaml"));

    it("the dev stack file's salt was made with the empty passphrase, and no other", () => {
      expect(saltOpensWith(devStackFile.encryptionsalt, "")).toBe(true);
      expect(saltOpensWith(devStackFile.encryptionsalt, "integration-tests")).toBe(false);
    });

    it("the dev stack holds no secret config (its passphrase is public)", () => {
      expect(JSON.stringify(devStackFile.config)).not.toContain('"secure"');
    });

    it("every job acting on a stack names it in env.STACK, and each is dev or prod", () => {
      const jobs = stackJobs();
      expect(jobs.map((j) => j.where).sort()).toEqual([
        "deploy.yml job dev",
        "deploy.yml job prod",
        "drift.yml job dev",
        "drift.yml job prod",
        "preview.yml job dev",
        "preview.yml job live-dev",
        "preview.yml job live-prod",
      ]);
      for (const { job, stack } of jobs) {
        expect(["dev", "prod"]).toContain(stack);
        for (const step of job.steps ?? []) if (step.with?.["stack-name"] !== undefined) expect(step.with["stack-name"]).toBe("${{ env.STACK }}");
      }
    });

    it("dev jobs pass the empty passphrase, which opens the dev salt; prod jobs the secret one, from their environment", () => {
      for (const { where, job, stack } of stackJobs()) {
        const passphrases = [job.env?.PULUMI_CONFIG_PASSPHRASE, ...(job.steps ?? []).map((s) => s.env?.PULUMI_CONFIG_PASSPHRASE)].filter((p) => p !== undefined);
        const rule = declaredEnvironments()[environmentOf(job) ?? ""];
        if (stack === "dev") {
          expect({ where, passphrases }).toEqual({ where, passphrases: [""] });
          expect(rule?.secrets ?? []).not.toContain("PULUMI_CONFIG_PASSPHRASE");
        } else {
          expect({ where, passphrases }).toEqual({ where, passphrases: ["${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"] });
          expect(rule?.secrets).toContain("PULUMI_CONFIG_PASSPHRASE");
          expect(rule?.stack).toBe("prod");
        }
      }
      expect(saltOpensWith(devStackFile.encryptionsalt, "")).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------
// What runs before and around a deploy, and how the Docker host is reached.
// ---------------------------------------------------------------------------

const ACCESS_SCRIPT = "bash scripts/ci-docker-access.sh";
const ACCESS_SECRETS = ["DOCKER_SSH_KEY", "DOCKER_SSH_KNOWN_HOSTS", "DOCKER_TLS_CA", "DOCKER_TLS_CERT", "DOCKER_TLS_KEY"];
/** scripts/test.sh with the unit project only: tsc --noEmit, then jest's unit suite (which runs actionlint and shellcheck). */
const UNIT_SUITE = "npm test -- --selectProjects unit";

const isPulumiAction = (step: Step) => /^pulumi\/actions@/.test(step.uses ?? "");
/** A step that acts on a stack through its Docker host: a pulumi/actions command, or the drift check. */
const actsOnStack = (step: Step) => (isPulumiAction(step) && step.with?.command !== undefined) || /npm run drift|\bpulumi (up|preview|refresh)\b/.test(step.run ?? "");
const needsOf = (job: Job): string[] => (job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs]);
const concurrencyOf = (c: string | Concurrency | undefined): Concurrency | undefined => (typeof c === "string" ? { group: c } : c);

/**
 * What is wrong with the CI around the stacks, one sentence per finding; []
 * when nothing is. The rules (issue 18):
 * - every `pulumi up` job needs, directly or through its needs, a job without
 *   credentials that type-checks and runs the unit suite;
 * - every job handed the DOCKER_HOST secret runs scripts/ci-docker-access.sh
 *   (ssh with a pinned key, or tcp with Docker TLS; plaintext tcp refused)
 *   with the ssh and TLS secrets, before any step that acts on the stack;
 * - in deploy.yml and drift.yml, each stack job holds its stack's concurrency
 *   group (stack-dev, stack-prod), never cancelling, and each workflow runs one
 *   at a time, so a newcomer in a stack's group never cancels a pending deploy;
 * - every use of the policy pack passes its configuration, policy/config.json.
 */
function ciFindings(workflows: Record<string, Workflow>): string[] {
  const findings: string[] = [];
  for (const [file, workflow] of Object.entries(workflows)) {
    const stackWorkflow = /^(deploy|drift)(-before-issue-18)?\.yml$/.test(file);
    const groupOfWorkflow = concurrencyOf(workflow.concurrency);
    if (stackWorkflow && !(groupOfWorkflow?.group && groupOfWorkflow["cancel-in-progress"] === false)) {
      findings.push(`${file}: runs are not serialised (workflow-level concurrency group with cancel-in-progress false)`);
    }
    const testedBefore = (id: string, seen = new Set<string>()): boolean => {
      if (seen.has(id)) return false;
      seen.add(id);
      const job = workflow.jobs[id];
      if (!job) return false;
      const runsSuite = (job.steps ?? []).some((step) => (step.run ?? "").includes(UNIT_SUITE)) && secretsOf(job).length === 0 && environmentOf(job) === undefined;
      return runsSuite || needsOf(job).some((need) => testedBefore(need, seen));
    };
    for (const [id, job] of Object.entries(workflow.jobs)) {
      const where = `${file} job ${id}`;
      const steps = job.steps ?? [];
      const deploys = steps.some((step) => isPulumiAction(step) && step.with?.command === "up") || steps.some((step) => /\bpulumi up\b/.test(step.run ?? ""));
      if (deploys && !needsOf(job).some((need) => testedBefore(need))) {
        findings.push(`${where} deploys without first needing a job, holding no credentials, that runs \`${UNIT_SUITE}\` (type check and unit suite)`);
      }
      if (secretsOf(job).includes("secrets.DOCKER_HOST")) {
        const access = steps.findIndex((step) => (step.run ?? "").trim() === ACCESS_SCRIPT);
        const firstUse = steps.findIndex(actsOnStack);
        if (access < 0 || (firstUse >= 0 && access > firstUse)) {
          findings.push(`${where} hands the DOCKER_HOST secret on without first running \`${ACCESS_SCRIPT}\` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)`);
        } else {
          const given = Object.entries(steps[access].env ?? {}).filter(([name, value]) => value === `\${{ secrets.${name} }}`).map(([name]) => name);
          const missing = ACCESS_SECRETS.filter((secret) => !given.includes(secret));
          if (missing.length > 0) findings.push(`${where} runs ${ACCESS_SCRIPT} without ${missing.join(", ")}`);
        }
      }
      const stack = job.env?.STACK;
      if (stackWorkflow && typeof stack === "string" && steps.some(actsOnStack)) {
        const group = concurrencyOf(job.concurrency);
        if (group?.group !== `stack-${stack}` || group["cancel-in-progress"] !== false) {
          findings.push(`${where} acts on ${stack} outside its concurrency group stack-${stack} (cancel-in-progress false): a deploy and a drift check of ${stack} can race`);
        }
      }
      for (const step of steps.filter((s) => isPulumiAction(s) && s.with?.policyPacks !== undefined)) {
        if (step.with?.policyPackConfigs !== "policy/config.json") {
          findings.push(`${where} runs the policy pack without its configuration (policyPackConfigs: policy/config.json, which names the production stacks)`);
        }
      }
    }
  }
  return findings;
}

describe("the CI around the stacks", () => {
  it("type-checks and runs the unit suite before any deploy, reaches Docker hosts only over ssh with a pinned key or tcp with TLS, never races a deploy with a drift check, and always configures the policy pack", () => {
    expect(ciFindings(repoWorkflows())).toEqual([]);
  });

  it("would be caught: the deploy and drift workflows before issue 18", () => {
    const before = (name: string) => readYaml<Workflow>(path.join(__dirname, "fixtures", "workflows", `${name}-before-issue-18.yml`));
    expect(ciFindings({ "deploy-before-issue-18.yml": before("deploy"), "drift-before-issue-18.yml": before("drift") })).toEqual([
      "deploy-before-issue-18.yml job dev deploys without first needing a job, holding no credentials, that runs `npm test -- --selectProjects unit` (type check and unit suite)",
      "deploy-before-issue-18.yml job dev hands the DOCKER_HOST secret on without first running `bash scripts/ci-docker-access.sh` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)",
      "deploy-before-issue-18.yml job dev acts on dev outside its concurrency group stack-dev (cancel-in-progress false): a deploy and a drift check of dev can race",
      "deploy-before-issue-18.yml job dev runs the policy pack without its configuration (policyPackConfigs: policy/config.json, which names the production stacks)",
      "deploy-before-issue-18.yml job prod deploys without first needing a job, holding no credentials, that runs `npm test -- --selectProjects unit` (type check and unit suite)",
      "deploy-before-issue-18.yml job prod hands the DOCKER_HOST secret on without first running `bash scripts/ci-docker-access.sh` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)",
      "deploy-before-issue-18.yml job prod acts on prod outside its concurrency group stack-prod (cancel-in-progress false): a deploy and a drift check of prod can race",
      "deploy-before-issue-18.yml job prod runs the policy pack without its configuration (policyPackConfigs: policy/config.json, which names the production stacks)",
      "drift-before-issue-18.yml: runs are not serialised (workflow-level concurrency group with cancel-in-progress false)",
      "drift-before-issue-18.yml job dev hands the DOCKER_HOST secret on without first running `bash scripts/ci-docker-access.sh` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)",
      "drift-before-issue-18.yml job dev acts on dev outside its concurrency group stack-dev (cancel-in-progress false): a deploy and a drift check of dev can race",
      "drift-before-issue-18.yml job prod hands the DOCKER_HOST secret on without first running `bash scripts/ci-docker-access.sh` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)",
      "drift-before-issue-18.yml job prod acts on prod outside its concurrency group stack-prod (cancel-in-progress false): a deploy and a drift check of prod can race",
    ]);
  });

  it("would be caught: a unit-suite job holding a secret does not count, nor does a suite job the deploy does not need", () => {
    const workflow = yaml.load(
      [
        "on: push",
        "jobs:",
        `  test: { runs-on: ubuntu-latest, steps: [ { run: '${UNIT_SUITE}', env: { X: '\${{ secrets.DOCKER_HOST }}' } } ] }`,
        `  other: { runs-on: ubuntu-latest, steps: [ { run: '${UNIT_SUITE}' } ] }`,
        "  dev: { runs-on: ubuntu-latest, needs: test, steps: [ { uses: pulumi/actions@v6, with: { command: up } } ] }",
      ].join("\n"),
    ) as Workflow;
    expect(ciFindings({ "w.yml": workflow })).toEqual([
      "w.yml job test hands the DOCKER_HOST secret on without first running `bash scripts/ci-docker-access.sh` (ssh with a pinned key or tcp with Docker TLS; plaintext tcp refused)",
      "w.yml job dev deploys without first needing a job, holding no credentials, that runs `npm test -- --selectProjects unit` (type check and unit suite)",
    ]);
  });
});

describe("scripts/ci-docker-access.sh refuses what the workflows do not support, before touching the host", () => {
  const script = path.join(root, "scripts", "ci-docker-access.sh");
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-docker-access-"));
    fs.writeFileSync(path.join(dir, "env"), "");
    fs.writeFileSync(path.join(dir, "path"), "");
    // A docker that records being called: a refusal must come before any call.
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, "bin", "docker"), `#!/bin/sh\necho called >> "${dir}/docker-calls"\nexit 1\n`, { mode: 0o755 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const access = (env: Record<string, string>) =>
    spawnSync("bash", [script], {
      encoding: "utf8",
      env: { PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, HOME: dir, RUNNER_TEMP: dir, GITHUB_ENV: path.join(dir, "env"), GITHUB_PATH: path.join(dir, "path"), ...env },
    });

  it.each([
    [{ DOCKER_HOST: "" }, "the DOCKER_HOST secret is empty"],
    [{ DOCKER_HOST: "tcp://build.example.internal:2375" }, "DOCKER_HOST is tcp://build.example.internal:2375, a TCP API, but the DOCKER_TLS_CA DOCKER_TLS_CERT DOCKER_TLS_KEY secret(s) are empty: a plaintext Docker API is refused"],
    [{ DOCKER_HOST: "tcp://build.example.internal:2376", DOCKER_TLS_CA: "ca", DOCKER_TLS_CERT: "cert" }, "but the DOCKER_TLS_KEY secret(s) are empty: a plaintext Docker API is refused"],
    [{ DOCKER_HOST: "ssh://deploy@build.example.internal", DOCKER_SSH_KNOWN_HOSTS: "build.example.internal ssh-ed25519 AAAA" }, "the DOCKER_SSH_KEY secret (the deploy key's private key) is empty"],
    [{ DOCKER_HOST: "ssh://deploy@build.example.internal", DOCKER_SSH_KEY: "key" }, "the DOCKER_SSH_KNOWN_HOSTS secret is empty: pin the host's key"],
    [{ DOCKER_HOST: "http://build.example.internal:2375" }, "DOCKER_HOST is http://build.example.internal:2375: expected ssh://user@host"],
  ])("refuses %j", (env, message) => {
    const result = access(env);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`[docker-access] ERROR: `);
    expect(result.stderr).toContain(message);
    expect(fs.existsSync(path.join(dir, "docker-calls"))).toBe(false);
    expect(fs.readFileSync(path.join(dir, "env"), "utf8") + fs.readFileSync(path.join(dir, "path"), "utf8")).toBe("");
  });
});
