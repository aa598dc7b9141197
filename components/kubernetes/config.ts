/**
 * Stack configuration → validated settings of BuildKit daemons on a Kubernetes
 * cluster ({@link BuildkitCluster}).
 *
 * A stack is a cluster stack when it sets `buildkit:kubeconfig`. The daemon's
 * own keys and rules are the core's (components/core), checked in the same
 * order as on a Docker host; this adds what only a cluster has — where the
 * cluster is, the namespace, replicas, each replica's cache volume. A Docker
 * host's own keys are refused by name, so a stack file is never half-read.
 * Every problem names the full key, the value given and the form accepted.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { z } from "zod";

import { ConfigError, full, KeySpec, KeyTable, KeyValues, readKeys, refuse, show, size, wholeNumber } from "../core/config-keys";
import {
  cacheFloors,
  DAEMON_KEYS,
  daemonAccessProblems,
  daemonBasis,
  daemonRuleProblems,
  DaemonSettings,
  daemonSettingsOf,
  memoryFloor,
  sizeFloorProblems,
} from "../core/daemon-settings";
import { tlsProblems, TlsKey } from "../core/tls";
import { GIB, MIB } from "../core/units";
import { configSecretness, DOCKER_KEYS, FLEET_HOSTS_KEY } from "../docker/config";

/** The key that makes a stack a cluster stack. */
export const KUBECONFIG_KEY = "kubeconfig";

/** Validated settings of the daemons on one cluster: the core's, plus the cluster's own. */
export interface ClusterSettings extends DaemonSettings {
  /** Absolute path of the kubeconfig file (`~/` expanded). */
  kubeconfig: string;
  /** The kubeconfig context; undefined: the file's current context. */
  kubeContext?: string;
  namespace: string;
  /** The StatefulSet's name, and so each replica's pod name prefix (`<name>-0`, `<name>-1`, …). */
  name: string;
  replicas: number;
  /** Each replica's cache volume (a PVC per replica), in bytes. */
  cacheSizeBytes: number;
  /** undefined: the cluster's default StorageClass. */
  storageClass?: string;
}

/** A DNS-1123 label: what Kubernetes accepts as a namespace, a Service or a StatefulSet name. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/**
 * A StatefulSet's pods carry the label controller-revision-hash=<name>-<hash>
 * (labels hold at most 63 characters; the hash takes up to 11), so the
 * controller cannot create pods for a longer name.
 */
const MAX_STATEFULSET_NAME = 52;
const MAX_REPLICAS = 64;
const DEFAULT_CACHE_SIZE = 10 * GIB;

const dnsLabel = (max: number, what: string): KeySpec<string> => ({
  schema: z.string().transform((v, ctx) => {
    if (v.length > max) return refuse(ctx, `${v.length} characters; ${what} takes at most ${max}`);
    return DNS_LABEL.test(v) ? v : refuse(ctx);
  }),
  form: `a DNS label for ${what}: lower-case letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters`,
});

const kubeconfig: KeySpec<string> = {
  schema: z.string().transform((v, ctx) => {
    const file = v.startsWith("~/") ? path.join(os.homedir(), v.slice(2)) : v;
    if (!path.isAbsolute(file)) return refuse(ctx, "a relative path would depend on the directory pulumi runs in");
    if (!fs.existsSync(file)) return refuse(ctx, `there is no file ${file}`);
    return file;
  }),
  form: "the absolute path of a kubeconfig file, like ~/.kube/config (~/ is your home)",
};

/** Every key a cluster stack reads, under the `buildkit:` namespace, in the reference's order. */
const KEYS = {
  kubeconfig,
  kubeContext: { schema: z.string().min(1), form: "the name of a context in the kubeconfig file" } as KeySpec<string>,
  namespace: dnsLabel(63, "a namespace"),
  name: dnsLabel(MAX_STATEFULSET_NAME, "a StatefulSet (its pods add -0, -1, … and a revision label)"),
  replicas: wholeNumber(`a whole number of replicas from 1 to ${MAX_REPLICAS}`, 1, MAX_REPLICAS),
  cacheSize: size,
  storageClass: dnsLabel(253, "a StorageClass"),
  ...DAEMON_KEYS,
} satisfies KeyTable;

/**
 * Daemon keys that do not apply on a cluster yet (a known limit in
 * docs/known-limits.md): following a moving tag.
 */
const NOT_ON_A_CLUSTER = ["tagRegistry"];

export type ClusterKey = keyof typeof KEYS;
/** The keys a cluster stack reads (and the change-impact table has a row for), in the reference's order. */
export const CLUSTER_KEYS = (Object.keys(KEYS) as ClusterKey[]).filter((key) => !NOT_ON_A_CLUSTER.includes(key));

/** Why a key of ours does not apply to a cluster stack, or undefined when it is not ours at all. */
function elsewhere(key: string): string | undefined {
  if (key === FLEET_HOSTS_KEY || (DOCKER_KEYS as string[]).includes(key)) {
    return `${full(key)} is a Docker host's setting; a cluster stack (${full(KUBECONFIG_KEY)} is set) does not read it`;
  }
  return undefined;
}

/** Whether raw config (as `pulumi.runtime.allConfig()` holds it) describes a cluster stack. */
export function isClusterConfig(raw: Record<string, unknown>): boolean {
  return raw[full(KUBECONFIG_KEY)] !== undefined || raw[KUBECONFIG_KEY] !== undefined;
}

/**
 * Parses raw config into a cluster's settings, or throws a {@link ConfigError}
 * listing every problem. `stack` names the defaults (the namespace).
 */
export function parseClusterSettings(raw: Record<string, unknown>, context: { stack: string; isSecret?: (key: string) => boolean }): ClusterSettings {
  const reading = readKeys(raw, KEYS, { elsewhere, isSecret: context.isSecret });
  const values: KeyValues<typeof KEYS> = reading.values;
  const basis = daemonBasis(reading);
  const problems = [...reading.problems];
  for (const key of NOT_ON_A_CLUSTER.filter((k) => reading.given(k as keyof typeof KEYS))) {
    problems.push(
      `${full(key)} is not read on a cluster stack yet (following a moving tag; pin the image by digest or version tag and change it to roll); remove it, or deploy to a Docker host`,
    );
  }
  problems.push(...sizeFloorProblems(reading, [memoryFloor(basis.production), cacheSizeFloor, ...cacheFloors(basis.production)]));
  problems.push(...daemonAccessProblems(basis));
  problems.push(...daemonRuleProblems(basis, problems));
  // GC keeps the cache under its ceiling; a ceiling above the volume would fill it first and fail builds with ENOSPC.
  const cacheSizeBytes = values.cacheSize ?? DEFAULT_CACHE_SIZE;
  if (values.cacheMaxUsedSpace !== undefined && values.cacheMaxUsedSpace > cacheSizeBytes && !reading.refused("cacheSize")) {
    problems.push(
      `${full("cacheMaxUsedSpace")} is ${show(reading.rawOf("cacheMaxUsedSpace"))}, above ${full("cacheSize")} (${reading.given("cacheSize") ? show(reading.rawOf("cacheSize")) : "10g, the default"}): GC would let the cache fill its volume; make the ceiling at most the volume's size`,
    );
  }
  const namespace = values.namespace ?? `buildkit-${context.stack.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 63).replace(/-+$/, "");
  const name = values.name ?? "buildkitd";
  const replicas = values.replicas ?? 1;
  // Each replica's listener is dialled by its own name under the headless Service, by the smoke test (from inside
  // the pod) and by clients in the cluster: the server certificate must carry each (a wildcard covers them all).
  const dialled = {
    dns: replicaPods(name, replicas).map((pod) => replicaHost(pod, name, namespace)),
    ips: [],
    dialledBy: `each replica's smoke test and clients in the cluster dial tcp://<pod>.${name}.${namespace}.svc:${values.tcpPort ?? "<tcpPort>"}`,
  };
  problems.push(...tlsProblems({ ...reading, tcpPort: values.tcpPort, formOf: (key: TlsKey) => KEYS[key].form }, dialled));
  if (!reading.given(KUBECONFIG_KEY)) problems.push(`${full(KUBECONFIG_KEY)} is not set; a cluster stack needs ${KEYS.kubeconfig.form}`);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    kubeconfig: values.kubeconfig!,
    kubeContext: values.kubeContext,
    namespace,
    name,
    replicas,
    cacheSizeBytes,
    storageClass: values.storageClass,
    ...daemonSettingsOf(basis),
  };
}

/** The replicas' pod names, in ordinal order: a StatefulSet names its pods `<name>-<ordinal>`. */
export function replicaPods(name: string, replicas: number): string[] {
  return Array.from({ length: replicas }, (_, ordinal) => `${name}-${ordinal}`);
}

/**
 * A replica's stable DNS name under the headless Service (named like the
 * StatefulSet): what its TCP listener is dialled by from inside the cluster.
 * The `.svc` form resolves from any namespace through the pods' search path,
 * whatever the cluster's domain.
 */
export function replicaHost(pod: string, service: string, namespace: string): string {
  return `${pod}.${service}.${namespace}.svc`;
}

/** A PVC smaller than a base image and its layers is useless as a cache. */
const cacheSizeFloor = { key: "cacheSize", min: 256 * MIB, why: "a smaller volume holds no useful build cache" };

/** Reads and validates this stack's configuration from the Pulumi runtime, before any resource is declared. */
export function loadClusterSettings(): ClusterSettings {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  return parseClusterSettings(pulumi.runtime.allConfig(), { stack: pulumi.getStack(), isSecret: configSecretness() });
}
