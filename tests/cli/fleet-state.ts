/**
 * A fleet's recorded state as `cli/stack-state.ts` reads it, shaped like
 * what `pulumi stack export --show-secrets` printed for a deployed 3-host
 * fleet (local, ssh-1, tls-1): components before providers, the smoke test on
 * the default command provider, the local provider recording the DOCKER_HOST
 * it resolved, TLS material on the tcp:// host's provider.
 */
import type { RecordedResource } from "../../cli/stack-state";
import { COMMAND_TYPE, CONTAINER_TYPE, DOCKER_PROVIDER_TYPE, IMAGE_TYPE, NETWORK_TYPE, VOLUME_TYPE } from "../../components/resource-types";

export const STACK = "fa-unit";
const PREFIX = `urn:pulumi:${STACK}::buildkit::`;
const FLEET_URN = `${PREFIX}buildkit:index:BuildkitFleet::buildkit`;
export const TLS = { ca: "-----BEGIN CERTIFICATE-----\nca\n", cert: "-----BEGIN CERTIFICATE-----\ncert\n", key: "-----BEGIN PRIVATE KEY-----\nkey\n" };

function resource(type: string, urn: string, fields: Partial<RecordedResource> = {}): RecordedResource {
  return { urn, type, inputs: {}, outputs: {}, secretFiles: new Set(), ...fields };
}

export const stackUrn = (host: string) => `${PREFIX}buildkit:index:BuildkitFleet$buildkit:index:BuildkitStack::buildkit-${host}`;
export const providerUrn = (host: string) => `${PREFIX}buildkit:index:BuildkitFleet$pulumi:providers:docker::buildkit-${host}-docker`;
export const childUrn = (host: string, type: string, suffix: string) => `${PREFIX}buildkit:index:BuildkitFleet$buildkit:index:BuildkitStack$${type}::buildkit-${host}-${suffix}`;

/** Every resource of one host, in the order the state lists them. */
export function hostResources(host: string, providerInputs: Record<string, unknown>): RecordedResource[] {
  const provider = `${providerUrn(host)}::provider-id-${host}`;
  const child = (type: string, suffix: string, extra: Partial<RecordedResource> = {}) =>
    resource(type, childUrn(host, type, suffix), { parent: stackUrn(host), provider, ...extra });
  return [
    resource(DOCKER_PROVIDER_TYPE, providerUrn(host), { parent: FLEET_URN, inputs: { __internal: {}, version: "5.0.0", ...providerInputs } }),
    child(VOLUME_TYPE, "cache", { inputs: { name: `bk-fa-${host}-cache` } }),
    child(NETWORK_TYPE, "network", { inputs: { name: `bk-fa-${host}` } }),
    child(IMAGE_TYPE, "image", { inputs: { name: "moby/buildkit:v0.32.2" } }),
    child(CONTAINER_TYPE, "daemon", { id: `id-${host}`, inputs: { name: `bk-fa-${host}` }, outputs: { name: `bk-fa-${host}` } }),
    // The smoke test runs the docker CLI itself: the command provider, not the host's docker provider.
    child(COMMAND_TYPE, "smoke-test", { provider: `${PREFIX}pulumi:providers:command::default_1_2_1::cmd-id` }),
  ];
}

/** A host's BuildkitStack component under the fleet. */
export function hostStack(host: string): RecordedResource {
  return resource("buildkit:index:BuildkitStack", stackUrn(host), { parent: FLEET_URN });
}

export function fleetState(): RecordedResource[] {
  return [
    resource("pulumi:pulumi:Stack", `${PREFIX}pulumi:pulumi:Stack::buildkit-${STACK}`),
    resource("buildkit:index:BuildkitFleet", FLEET_URN, { parent: `${PREFIX}pulumi:pulumi:Stack::buildkit-${STACK}` }),
    hostStack("ssh-1"),
    hostStack("tls-1"),
    hostStack("local"),
    resource("pulumi:providers:command", `${PREFIX}pulumi:providers:command::default_1_2_1`),
    ...hostResources("local", { host: "unix:///run/buildkit-stack/docker-29.sock" }),
    ...hostResources("ssh-1", { host: "ssh://root@127.0.0.1:18421" }),
    ...hostResources("tls-1", { host: "tcp://127.0.0.1:18422", caMaterial: TLS.ca, certMaterial: TLS.cert, keyMaterial: TLS.key }),
  ];
}

/** A single-host stack: no fleet component, one provider at the top. */
export function singleHostState(): RecordedResource[] {
  const provider = `${PREFIX}pulumi:providers:docker::docker-host`;
  return [
    resource("pulumi:pulumi:Stack", `${PREFIX}pulumi:pulumi:Stack::buildkit-${STACK}`),
    resource(DOCKER_PROVIDER_TYPE, provider, { inputs: { host: "unix:///var/run/docker.sock" } }),
    resource("buildkit:index:BuildkitStack", `${PREFIX}buildkit:index:BuildkitStack::buildkit`),
    resource(CONTAINER_TYPE, `${PREFIX}buildkit:index:BuildkitStack$docker:index/container:Container::buildkit-daemon`, {
      parent: `${PREFIX}buildkit:index:BuildkitStack::buildkit`,
      provider: `${provider}::pid`,
    }),
  ];
}
