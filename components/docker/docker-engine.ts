/**
 * The Docker engine a {@link BuildkitStack} deploys to, as one value: the docker
 * provider every resource goes through and what the smoke test's docker CLI
 * needs to reach the same engine (host, TLS material) are built here from the
 * same arguments, so the two can never point at different engines.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

import type { DockerSettings, DockerTlsMaterial } from "./config";
import { DRIFT_CHECK_ENV, dockerInspector, EngineFacts, enginePreflightProblems } from "./engine-preflight";
import { DEFAULT_DOCKER_HOST, isLocalEndpoint, withEngineEnv } from "./engine-probe";

/** Arguments of {@link DockerEngine}. */
export interface DockerEngineArgs {
  /**
   * The engine's endpoint: `unix:///path`, `ssh://user@host` or
   * `tcp://host:2376`. Unset means what the docker CLI and provider do by
   * default: DOCKER_HOST, else the local socket.
   */
  host?: string;
  /** Client TLS material for a `tcp://` engine started with `--tlsverify`. */
  tls?: DockerTlsMaterial;
  /**
   * The engine's API version (`engineApiVersion` in engine-probe.ts asks it).
   * From 1.44 the daemon's healthcheck probes every second while it starts;
   * unset means an older engine's healthcheck form (no start interval).
   */
  apiVersion?: pulumi.Input<string>;
  /**
   * Ask the engine, before anything is declared on it, what only it can judge
   * (engine-preflight.ts): CPUs, swap accounting, ports, addresses, names
   * another program holds. The program sets it; tests under mocks do not.
   */
  askEngine?: boolean;
}

/** One Docker engine: its provider, and the same endpoint for the docker CLI. */
export class DockerEngine {
  /** The provider every resource on this engine is created through. */
  public readonly provider: docker.Provider;
  /** The endpoint the provider was given; undefined for the ambient one. */
  public readonly host?: string;
  /** The TLS client material the provider was given. */
  public readonly tls?: DockerTlsMaterial;
  /** The engine's API version, when it was asked. */
  public readonly apiVersion?: pulumi.Input<string>;
  /** Whether the engine is asked what only it can judge before anything is declared on it. */
  public readonly askEngine: boolean;

  /** What `docker info` says about the engine, asked once per program (rejects when it does not answer). */
  facts(): Promise<EngineFacts> {
    return engineFacts(this.host, this.tls);
  }

  constructor(name: string, args: DockerEngineArgs = {}, opts: pulumi.CustomResourceOptions = {}) {
    this.host = args.host;
    this.tls = args.tls;
    this.apiVersion = args.apiVersion;
    this.askEngine = args.askEngine ?? false;
    this.provider = new docker.Provider(
      name,
      {
        host: args.host,
        caMaterial: args.tls?.ca,
        certMaterial: args.tls?.cert,
        keyMaterial: args.tls ? pulumi.secret(args.tls.key) : undefined,
      },
      opts,
    );
  }
}

const asked = new Map<string, Promise<EngineFacts>>();

/**
 * What `docker info` says about the engine at `host` (with `tls`), asked once
 * per program however many stacks, rules and fleet checks want it.
 */
export function engineFacts(host: string | undefined, tls: DockerTlsMaterial | undefined): Promise<EngineFacts> {
  const key = JSON.stringify([host ?? null, tls ?? null]);
  let facts = asked.get(key);
  if (!facts) {
    facts = withEngineEnv(host, tls, (env) => dockerInspector(env, false).facts());
    asked.set(key, facts);
  }
  return facts;
}

/**
 * The problems of `settings` on this engine that only the engine can judge
 * (engine-preflight.ts); none when the engine is not to be asked. An engine
 * that does not answer is not judged here: the provider fails on it where it
 * reaches it, naming the host (a fleet's roll stops at that host, the hosts
 * after it untouched; drift and doctor report it as unreachable), and a
 * warning says the checks were skipped.
 */
export function enginePreflight(engine: DockerEngine, settings: DockerSettings, parent?: pulumi.Resource): Promise<string[]> {
  if (!engine.askEngine) return Promise.resolve([]);
  return withEngineEnv(engine.host, engine.tls, (env) => {
    const inspector = { ...dockerInspector(env, isLocalEndpoint(engine.host)), facts: () => engine.facts() };
    return enginePreflightProblems(settings, inspector, env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST, process.env[DRIFT_CHECK_ENV] !== "1");
  }).catch((error: unknown) => {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    void pulumi.log.warn(`the Docker engine at ${engine.host ?? DEFAULT_DOCKER_HOST} did not answer (${reason}); its preflight checks are skipped`, parent);
    return [];
  });
}

/**
 * What a local command's docker CLI needs to reach the engine (the smoke test,
 * the cache guard): its DOCKER_HOST, and the TLS client material that
 * {@link dockerTlsPreamble} writes where the CLI reads it.
 */
export function dockerCliEnvironment(engine: DockerEngine): Record<string, pulumi.Input<string>> {
  const environment: Record<string, pulumi.Input<string>> = {};
  if (engine.host) environment.DOCKER_HOST = engine.host;
  if (engine.tls) {
    environment.DOCKER_TLS_CA = engine.tls.ca;
    environment.DOCKER_TLS_CERT = engine.tls.cert;
    environment.DOCKER_TLS_KEY = pulumi.secret(engine.tls.key);
  }
  return environment;
}

/**
 * Puts the Docker TLS client material where the docker CLI reads it
 * (DOCKER_CERT_PATH), for a local command's calls to a `--tlsverify` engine.
 * Prepended only when a host has such material, so other stacks' commands
 * are unchanged.
 */
export function dockerTlsPreamble(): string {
  return [
    'DOCKER_CERT_PATH=$(mktemp -d)',
    'trap \'rm -rf "$DOCKER_CERT_PATH"\' EXIT',
    'printf "%s" "$DOCKER_TLS_CA" >"$DOCKER_CERT_PATH/ca.pem"',
    'printf "%s" "$DOCKER_TLS_CERT" >"$DOCKER_CERT_PATH/cert.pem"',
    'printf "%s" "$DOCKER_TLS_KEY" >"$DOCKER_CERT_PATH/key.pem"',
    "export DOCKER_CERT_PATH DOCKER_TLS_VERIFY=1",
    "",
  ].join("\n");
}

/** A local command's script for this engine: the TLS preamble first where the engine needs it. */
export function forEngine(engine: DockerEngine, script: string): string {
  return (engine.tls ? dockerTlsPreamble() : "") + script;
}
