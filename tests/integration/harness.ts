/**
 * What every integration test needs: the real engine (or a loud failure), a
 * private copy of the program with its own file backend, and small helpers to
 * act like a user at a shell (docker, buildctl) with bounded polling.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { ConfigMap, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";

import { CommandResult, mustRun, runCommand as run } from "../../cli/command";
import { copyProgram } from "../../runtime/program-files";
import { CertificateSet, makeCertificates as makeCertificateSet, tlsSettings } from "../components/certificates";

/** The product's own command runner: tests see a command fail exactly as the CLIs do. */
export { mustRun, run };
export type { CommandResult } from "../../cli/command";

export const repoRoot = path.resolve(__dirname, "../..");
/** Files that make up the program; copied so each test has its own stack files. */

let announcedEngine: string | undefined;

/**
 * Integration tests need the real engine. Without one they fail, with the
 * fix: they are never skipped.
 */
export function requireEngine(): void {
  const info = run("docker", ["info", "--format", "{{.ServerVersion}}"]);
  if (info.code !== 0) {
    throw new Error(
      `No Docker engine answers at ${process.env.DOCKER_HOST ?? "the default socket"} (docker info: ${info.stderr.trim()}). Run \`bash scripts/provision.sh\` (or \`npm test\`, which does), then re-run.`,
    );
  }
  // Every test file says which engine it ran on (the suite runs on several: README, Docker engines).
  const engine = `Docker ${info.stdout.trim()} at ${process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock"}`;
  if (engine !== announcedEngine) console.info(`integration tests on ${(announcedEngine = engine)}`);
  const pulumi = run("pulumi", ["version"]);
  if (pulumi.code !== 0) {
    throw new Error("The pulumi CLI is not on PATH. Run the tests with `npm test`, which provisions it and sources scripts/env.sh.");
  }
}

/**
 * Sends everything this test file runs — docker, buildctl's docker-container://,
 * the Pulumi CLI, the docker provider and the smoke test — to the engine at
 * `host`, as DOCKER_HOST does for a user. Returns what puts the ambient
 * DOCKER_HOST back (call it last in afterAll, whatever cleanup threw).
 */
export function useDockerHost(host: string): () => void {
  const ambient = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = host;
  return () => {
    if (ambient === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = ambient;
  };
}

/** Polls `check` every `intervalMs` until it returns a value, or fails naming what never happened. */
export async function waitFor<T>(what: string, boundMs: number, check: () => T | undefined | Promise<T | undefined>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + boundMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== (false as unknown)) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${boundMs / 1000}s waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The registry mirror as containers see it (scripts/env.sh exports it). */
export const containerMirror = process.env.BUILDKIT_STACK_CONTAINER_MIRROR ?? "host.docker.internal:5000";

export interface TestStack {
  stack: Stack;
  /** The private program copy; Pulumi.<stack>.yaml lives here. */
  workDir: string;
  /** file:// backend of this stack alone. */
  backendUrl: string;
  /** Environment for running the pulumi CLI against this stack by hand (drift script, lock test). */
  env: Record<string, string>;
  containerName: string;
  networkName: string;
  cacheVolumeName: string;
  /** Destroys the stack and removes anything left behind under its names. */
  cleanup(): Promise<void>;
}

/**
 * A fresh stack of the real program, deploying docker objects named after
 * `id` (so tests never touch each other's or a user's `buildkitd`), with base
 * images pulled through the local mirror. `config` adds or overrides keys.
 */
export async function createTestStack(
  id: string,
  config: Record<string, string | { value: string; secret: boolean }> = {},
  options: { fromStackFile?: string } = {},
): Promise<TestStack> {
  requireEngine();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `buildkit-${id}-`));
  copyProgram(workDir);
  const backendDir = path.join(workDir, ".state");
  fs.mkdirSync(backendDir);
  const backendUrl = `file://${backendDir}`;
  const env = { PULUMI_BACKEND_URL: backendUrl, PULUMI_CONFIG_PASSPHRASE: "integration-tests" };

  const containerName = `bk-it-${id}`;
  const networkName = `bk-it-${id}`;
  const cacheVolumeName = `bk-it-${id}-cache`;
  removeDockerObjects(containerName, networkName, cacheVolumeName);

  if (options.fromStackFile) {
    // The repo's own stack file, as is: what `pulumi preview --stack NAME` would see.
    // Without its encryption salt: this copy's secrets use the tests' own passphrase.
    const stackFile = fs.readFileSync(path.join(repoRoot, `Pulumi.${options.fromStackFile}.yaml`), "utf8");
    fs.writeFileSync(path.join(workDir, `Pulumi.${id}.yaml`), stackFile.replace(/^encryptionsalt:.*\n/m, ""));
  }
  const stack = await LocalWorkspace.createStack({ stackName: id, workDir }, { envVars: env });
  const base: ConfigMap = options.fromStackFile ? {} : {
    "buildkit:containerName": { value: containerName },
    "buildkit:networkName": { value: networkName },
    "buildkit:cacheVolumeName": { value: cacheVolumeName },
    "buildkit:memory": { value: "1g" },
    "buildkit:cpus": { value: "1" },
    "buildkit:registryMirrors": { value: JSON.stringify([`http://${containerMirror}`]) },
    "buildkit:extraHosts": { value: JSON.stringify(["host.docker.internal:host-gateway"]) },
  };
  for (const [key, value] of Object.entries(config)) {
    base[key.includes(":") ? key : `buildkit:${key}`] = typeof value === "string" ? { value } : value;
  }
  await stack.setAllConfig(base);

  return {
    stack,
    workDir,
    backendUrl,
    env: { ...(process.env as Record<string, string>), ...env },
    containerName,
    networkName,
    cacheVolumeName,
    async cleanup() {
      try {
        // Protected resources (a production-like cache) are unprotected first: tests leave nothing behind.
        run("pulumi", ["state", "unprotect", "--all", "--yes", "--stack", id], { cwd: workDir, env: { ...process.env, ...env } });
        await stack.destroy({ onOutput: () => undefined });
        await stack.workspace.removeStack(id);
      } finally {
        removeDockerObjects(containerName, networkName, cacheVolumeName);
        fs.rmSync(workDir, { recursive: true, force: true });
      }
    },
  };
}

/** The program's own sources in a copy: what an upgrade changes. */
const PROGRAM_SOURCES = ["index.ts", "components"];

/**
 * Puts the program's sources as they were at `commit` (a stack deployed by an
 * older version) into a copy, or, without a commit, as they are now (the
 * upgrade). Nothing of the other version is left behind.
 */
export function useProgramAt(workDir: string, commit?: string): void {
  for (const entry of PROGRAM_SOURCES) fs.rmSync(path.join(workDir, entry), { recursive: true, force: true });
  if (commit === undefined) {
    for (const entry of PROGRAM_SOURCES) fs.cpSync(path.join(repoRoot, entry), path.join(workDir, entry), { recursive: true });
    return;
  }
  const archive = path.join(workDir, `program-${commit}.tar`);
  mustRun("git", ["archive", "--format=tar", "-o", archive, commit, ...PROGRAM_SOURCES], { cwd: repoRoot });
  mustRun("tar", ["-xf", archive, "-C", workDir]);
  fs.rmSync(archive);
}

/** Removes docker objects by name, ignoring those that do not exist. */
export function removeDockerObjects(containerName: string, networkName: string, volumeName: string): void {
  run("docker", ["rm", "-f", "-v", containerName]);
  run("docker", ["network", "rm", networkName]);
  run("docker", ["volume", "rm", "-f", volumeName]);
}

/** A build context directory with a Dockerfile FROM the mirror's busybox and RUN steps. */
export function writeBuildContext(dockerfile: string, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-context-"));
  fs.writeFileSync(path.join(dir, "Dockerfile"), dockerfile);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

/**
 * `buildctl build` of a local Dockerfile through BUILDKIT_HOST, as a user does.
 * Plain progress output, so CACHED steps can be asserted on.
 */
export function buildctlBuild(buildkitHost: string, contextDir: string, extraArgs: string[] = []): CommandResult {
  return run(
    "buildctl",
    ["--addr", buildkitHost, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${contextDir}`, "--local", `dockerfile=${contextDir}`, ...extraArgs],
  );
}

/** Counts the steps BuildKit reports as CACHED in plain progress output. */
export function cachedSteps(progress: string): number {
  return progress.split("\n").filter((line) => /^#\d+ CACHED$/.test(line.trim())).length;
}

/**
 * A throwaway CA with a server certificate for the daemon (SANs: the names
 * given; IPv4 addresses as IP SANs) and a client certificate: the unit tests'
 * maker (tests/components/certificates.ts), named the way integration tests
 * name what a daemon is dialled by. `dir` holds ca.pem, server.pem/key,
 * client.pem/key.
 */
export function makeCertificates(serverNames: string[]): CertificateSet {
  return makeCertificateSet({ serverSans: serverNames.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)) });
}

/** The set's five `tls*` keys as secret stack config, for {@link createTestStack}. */
export function tlsSecretConfig(set: CertificateSet): Record<string, { value: string; secret: boolean }> {
  return Object.fromEntries(Object.entries(tlsSettings(set)).map(([key, value]) => [key, { value, secret: true }]));
}

/** docker buildx as provisioned (scripts/provision/buildx.sh), at the version scripts/versions.sh pins. */
export function buildxPlugin(): { path: string; version: string } {
  const version = /^BUILDX_VERSION="([^"]+)"/m.exec(fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8"))![1];
  const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
  return { path: path.join(cache, "tools", `buildx-${version}`, "docker-buildx"), version };
}

/**
 * A DOCKER_CONFIG of the test's own with the provisioned buildx as its CLI
 * plugin: buildx keeps its builders there, and ~/.docker is never touched.
 * Fails with the fix when buildx is not provisioned.
 */
export function buildxDockerConfig(): string {
  const plugin = buildxPlugin();
  if (!fs.existsSync(plugin.path)) {
    throw new Error(`docker buildx ${plugin.version} is not provisioned (${plugin.path}). Run \`bash scripts/provision.sh\` (or \`npm test\`, which does), then re-run.`);
  }
  const dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), "buildx-docker-config-"));
  fs.mkdirSync(path.join(dockerConfig, "cli-plugins"));
  fs.symlinkSync(plugin.path, path.join(dockerConfig, "cli-plugins", "docker-buildx"));
  return dockerConfig;
}

/** Jest timeout for one integration step that deploys: generous, bounded. */
export const DEPLOY_TIMEOUT_MS = 10 * 60 * 1000;
