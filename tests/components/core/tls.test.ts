/**
 * The mTLS rules of the TCP listener (components/core/tls.ts), the same for
 * every target: only the names clients dial differ (a Docker host's container
 * and address; a cluster's per-replica DNS names under a headless Service).
 */
import { DialledNames, TlsInput, TlsKey, tlsProblems, tlsSettingsOf } from "../../../components/core/tls";
import { makeCertificates, tlsSettings } from "../certificates";

/** The rules' view of config with these keys given (all valid). */
function input(values: Partial<Record<TlsKey, string>>, tcpPort?: number): TlsInput {
  const given = (key: string) => (key === "tcpPort" ? tcpPort !== undefined : (values as Record<string, string>)[key] !== undefined);
  return { tcpPort, values, given, refused: () => false, formOf: (key) => `a PEM for ${key}` };
}

const names = (dns: string[], ips: string[] = []): DialledNames => ({ dns, ips, dialledBy: "clients dial them" });

describe("the listener's certificate names", () => {
  const wildcard = makeCertificates({ serverSans: ["DNS:*.buildkitd.builds.svc", "DNS:*.buildkitd.builds.svc.cluster.local"] });

  it("accepts a wildcard that covers every replica's name", () => {
    const replicas = [0, 1, 2].map((i) => `buildkitd-${i}.buildkitd.builds.svc`);
    expect(tlsProblems(input(tlsSettings(wildcard), 1234), names(replicas))).toEqual([]);
  });

  it("names every name it lacks, and who dials it", () => {
    expect(tlsProblems(input(tlsSettings(wildcard), 1234), names(["buildkitd-0.other.builds.svc"], ["10.0.0.1"]))).toEqual([
      "buildkit:tlsCert does not cover DNS:buildkitd-0.other.builds.svc and IP:10.0.0.1 in its subjectAltName " +
        "(it has DNS:*.buildkitd.builds.svc, DNS:*.buildkitd.builds.svc.cluster.local); clients dial them: " +
        "issue it with subjectAltName=DNS:buildkitd-0.other.builds.svc,IP:10.0.0.1",
    ]);
  });
});

describe("what must come together", () => {
  const set = makeCertificates({ serverSans: ["DNS:buildkitd"] });
  const all = tlsSettings(set);

  it("refuses a listener without TLS: plaintext is root for anyone who reaches the port", () => {
    expect(tlsProblems(input({}, 1234), names([]))[0]).toMatch(/^buildkit:tcpPort is 1234 but no TLS is configured; plaintext TCP/);
  });

  it("refuses TLS material without a listener", () => {
    expect(tlsProblems(input({ tlsCa: all.tlsCa }), names([]))).toEqual([
      "buildkit:tlsCa is set but buildkit:tcpPort is not; TLS material is only for the TCP listener (it would be uploaded into the container for nothing): set buildkit:tcpPort, or remove them",
    ]);
  });

  it("needs the client pair the smoke test connects with", () => {
    const { tlsClientCert: _cert, tlsClientKey: _key, ...server } = all;
    expect(tlsProblems(input(server, 1), names(["buildkitd"]))).toEqual([
      "buildkit:tcpPort is 1 but buildkit:tlsClientCert and buildkit:tlsClientKey are not set; buildkitd given a CA accepts only clients with a certificate it signed, " +
        "and the smoke test connects with this one: set buildkit:tlsClientCert and buildkit:tlsClientKey (as secrets)",
    ]);
  });

  it("is one value when all five are given, none otherwise", () => {
    expect(tlsSettingsOf(all)).toEqual({ ca: set.ca, cert: set.cert, key: set.key, clientCert: set.clientCert, clientKey: set.clientKey });
    expect(tlsSettingsOf({ ...all, tlsClientKey: undefined })).toBeUndefined();
  });
});
