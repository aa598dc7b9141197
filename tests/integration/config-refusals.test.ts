/**
 * Config refusals on the real CLI and engine (issue 18, item 14): values the
 * parse refuses — a platform variant that does not exist, two addresses for
 * one extra host, a volume name no directory can have — fail `pulumi up`
 * with every problem named and nothing created on the engine or in the state.
 * And no output a user sees — preview, up, drift, doctor, a refused secret's
 * message — carries a secret's value (a marker: lines of the stack's own TLS
 * keys, and a marker string in a refused key).
 */
import { CommandResult, createTestStack, DEPLOY_TIMEOUT_MS, makeCertificates, removeDockerObjects, repoRoot, requireEngine, run, TestStack, tlsSecretConfig } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

/** Host port of this file's mTLS listener (this file's range: 18470-18479). */
const TLS_PORT = 18470;

function exists(kind: "container" | "network" | "volume", name: string): boolean {
  return run("docker", [kind, "inspect", name]).code === 0;
}

describe("values the config parse refuses", () => {
  const ID = "h18-refused";
  const NAME = "bk-h18-refused";
  const LONG_VOLUME = `bk-h18-${"v".repeat(250)}`;
  let target: TestStack;

  beforeAll(async () => {
    requireEngine();
    target = await createTestStack(ID, {
      containerName: NAME,
      networkName: NAME,
      cacheVolumeName: LONG_VOLUME,
      platforms: '["linux/amd64/v9"]',
      extraHosts: '["host.docker.internal:host-gateway","db:10.0.0.2","db:10.0.0.3"]',
    });
  });

  afterAll(async () => {
    try {
      await target?.cleanup();
    } finally {
      removeDockerObjects(NAME, NAME, LONG_VOLUME);
    }
  });

  it("fail pulumi up with each key named and its accepted form, and create nothing", async () => {
    let output = "";
    await expect(target.stack.up({ onOutput: (out) => (output += out) })).rejects.toThrow();
    expect(output).toContain('buildkit:platforms is "[\\"linux/amd64/v9\\"]"; expected a list of platforms');
    expect(output).toContain('"linux/amd64/v9": amd64 has no variant v9 (its variants: v1, v2, v3, v4)');
    expect(output).toContain('buildkit:extraHosts maps "db" to 10.0.0.2 and 10.0.0.3');
    expect(output).toContain("buildkit:cacheVolumeName is");
    expect(output).toContain("(it is 257 characters; the volume is a directory on the engine's disk, whose names hold 255)");
    // Nothing on the engine, nothing in the state but the stack itself.
    expect([exists("container", NAME), exists("network", NAME), exists("volume", LONG_VOLUME)]).toEqual([false, false, false]);
    const deployment = (await target.stack.exportStack()).deployment as { resources?: { type: string }[] };
    expect((deployment.resources ?? []).filter((r) => r.type !== "pulumi:pulumi:Stack")).toEqual([]);
  });
});

describe("a secret's value in what users see", () => {
  const ID = "h18-secret";
  const NAME = "bk-h18-secret";
  const certificates = makeCertificates([NAME, "127.0.0.1"]);
  /** A line from the middle of each private key: a value only the secret holds. */
  const markers = [certificates.key, certificates.clientKey].map((pem) => pem.trim().split("\n")[3]);
  const REFUSED_MARKER = "h18-secret-marker-7d1f0c";
  let target: TestStack;
  const seen: string[] = [];

  const cli = (script: "drift" | "doctor"): CommandResult => {
    const result = run("bash", ["scripts/run-ts.sh", `cli/${script}.ts`, "--stack", ID, "--cwd", target.workDir], { env: target.env, cwd: repoRoot });
    seen.push(result.stdout, result.stderr);
    return result;
  };

  beforeAll(async () => {
    requireEngine();
    target = await createTestStack(ID, {
      containerName: NAME,
      networkName: NAME,
      cacheVolumeName: `${NAME}-cache`,
      tcpPort: String(TLS_PORT),
      ...tlsSecretConfig(certificates),
    });
  });

  afterAll(async () => {
    try {
      await target?.cleanup();
    } finally {
      removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    }
  });

  it("is in no output of preview, up, drift or doctor, nor in the message that refuses a secret", async () => {
    for (const marker of markers) expect(marker.length).toBeGreaterThan(40);
    const capture = { onOutput: (out: string) => seen.push(out) };
    await target.stack.preview({ ...capture, diff: true });
    const up = await target.stack.up({ ...capture, diff: true });
    seen.push(JSON.stringify(up.outputs));
    expect(String(up.outputs.smokeTestSummary.value)).toMatch(/test build ok/);
    expect(cli("drift").code).toBe(0);
    expect(cli("doctor").code).toBe(0);

    // A secret the parse refuses: the message names the key, never the value.
    await target.stack.setConfig("buildkit:tlsClientKey", { value: `-----BEGIN PRIVATE KEY-----\n${REFUSED_MARKER}\n-----END PRIVATE KEY-----\n`, secret: true });
    let refused = "";
    await expect(target.stack.preview({ onOutput: (out) => (refused += out) })).rejects.toThrow();
    seen.push(refused);
    expect(refused).toContain("buildkit:tlsClientKey");

    const everything = seen.join("\n");
    expect(everything.length).toBeGreaterThan(1000);
    for (const marker of [...markers, REFUSED_MARKER]) expect(everything).not.toContain(marker);
  });
});
