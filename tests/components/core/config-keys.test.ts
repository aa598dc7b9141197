/** How every target reads a key and words a refusal (components/core/config-keys.ts). */
import { ConfigError, list, readKeys, size, wholeNumber } from "../../../components/core/config-keys";
import { DAEMON_KEYS } from "../../../components/core/daemon-settings";

const KEYS = { memory: size, replicas: wholeNumber("a whole number from 1 to 9", 1, 9), tlsKey: DAEMON_KEYS.tlsKey, mirrors: list((v) => (v.includes(" ") ? `"${v}" has a space` : undefined), "a list") };

describe("reading keys", () => {
  it("reads keys with or without the namespace, native or as config strings, and ignores other namespaces", () => {
    const reading = readKeys({ "buildkit:memory": "1g", replicas: 3, mirrors: '["a","b"]', "aws:region": "x" }, KEYS);
    expect(reading.values).toEqual({ memory: 1024 ** 3, replicas: 3, mirrors: ["a", "b"] });
    expect(reading.problems).toEqual([]);
    expect(reading.given("memory")).toBe(true);
    expect(reading.given("tlsKey")).toBe(false);
  });

  it("names the key, the value and the form, with the reason when the schema gives one", () => {
    const reading = readKeys({ "buildkit:replicas": "0x10", "buildkit:mirrors": '["a b"]' }, KEYS);
    expect(reading.problems).toEqual(['buildkit:replicas is "0x10"; expected a whole number from 1 to 9', 'buildkit:mirrors is "[\\"a b\\"]"; expected a list ("a b" has a space)']);
    expect(reading.refused("replicas")).toBe(true);
  });

  it("never echoes a secret", () => {
    expect(readKeys({ "buildkit:tlsKey": "hunter2" }, KEYS).problems).toEqual([
      "buildkit:tlsKey is [secret]; expected a PEM-encoded server private key, set with `pulumi config set --secret`",
    ]);
  });

  it("lists the known keys for a typo, or says where a key belongs", () => {
    expect(readKeys({ "buildkit:memroy": "1g" }, KEYS).problems).toEqual(["buildkit:memroy is not a setting this program reads; known settings: memory, replicas, tlsKey, mirrors"]);
    const elsewhere = (key: string) => (key === "hosts" ? "buildkit:hosts is a fleet's" : undefined);
    expect(readKeys({ "buildkit:hosts": "[]" }, KEYS, { elsewhere }).problems).toEqual(["buildkit:hosts is a fleet's"]);
    expect(readKeys({ "buildkit:hosts": "[]" }, KEYS, { skip: ["hosts"] }).problems).toEqual([]);
  });

  it("treats inherited names as typos, not keys", () => {
    expect(readKeys({ "buildkit:constructor": "x" }, KEYS).problems).toHaveLength(1);
  });
});

describe("ConfigError", () => {
  it("lists every problem, one per line", () => {
    expect(new ConfigError(["a", "b"]).message).toBe("Invalid stack configuration (2 problems):\n  - a\n  - b");
    expect(new ConfigError(["a"]).message).toBe("Invalid stack configuration (1 problem):\n  - a");
  });
});
