/**
 * The daemon's TCP listener is served only with mTLS, and only with material
 * that works: checked here with node:crypto before anything is deployed, the
 * same for every target (only the names clients dial differ).
 */
import { createPrivateKey, KeyObject, X509Certificate } from "node:crypto";

import { full } from "./config-keys";

/** TLS material for the TCP listener, PEM-encoded. */
export interface TlsSettings {
  /** CA that signed both the server and the client certificates. */
  ca: string;
  /** Server certificate presented by buildkitd; its SANs cover every name clients and the smoke test dial. */
  cert: string;
  /** Server private key. */
  key: string;
  /** Client certificate and key the smoke test (and you) connect with: buildkitd with a CA requires one. */
  clientCert: string;
  clientKey: string;
}

export const SERVER_TLS_KEYS = ["tlsCa", "tlsCert", "tlsKey"] as const;
export const CLIENT_TLS_KEYS = ["tlsClientCert", "tlsClientKey"] as const;
export type TlsKey = (typeof SERVER_TLS_KEYS)[number] | (typeof CLIENT_TLS_KEYS)[number];

/** What the TLS rules read of a stack's config. */
export interface TlsInput {
  tcpPort?: number;
  values: Partial<Record<TlsKey, string>>;
  given(key: TlsKey | "tcpPort"): boolean;
  refused(key: TlsKey | "tcpPort"): boolean;
  /** The form of each key, for a material problem (`expected …`). */
  formOf(key: TlsKey): string;
}

/** The names the server certificate must carry, and who dials them (for the message). */
export interface DialledNames {
  dns: string[];
  ips: string[];
  /** Who dials them, for the message: "the smoke test dials tcp://buildkitd:1234 and clients dial buildkit:tcpAddress". */
  dialledBy: string;
}

/** A parsed certificate or key, or the problem that it is not one. */
type Parsed509 = { cert?: X509Certificate; key?: KeyObject; problem?: string };

function readCertificate(input: TlsInput, key: TlsKey, pemText: string | undefined): Parsed509 {
  if (pemText === undefined) return {};
  try {
    return { cert: new X509Certificate(pemText) };
  } catch (error) {
    return { problem: `${full(key)} is [secret]; expected ${input.formOf(key)} (node:crypto cannot read it as an X.509 certificate: ${(error as Error).message})` };
  }
}

function readKey(input: TlsInput, key: TlsKey, pemText: string | undefined): Parsed509 {
  if (pemText === undefined) return {};
  try {
    return { key: createPrivateKey(pemText) };
  } catch (error) {
    return { problem: `${full(key)} is [secret]; expected ${input.formOf(key)} (node:crypto cannot read it as a private key: ${(error as Error).message})` };
  }
}

/**
 * The TCP listener: only with mTLS, and with material that works. buildkitd
 * given a CA requires client certificates, and the smoke test connects with
 * the client pair; clients verify the server certificate's subjectAltName
 * (Go ignores the CN), so it must carry every name in `names`, be the key's,
 * be signed by the CA (directly), be current and be issued for serverAuth; the
 * client certificate likewise for clientAuth.
 */
export function tlsProblems(input: TlsInput, names: DialledNames): string[] {
  const problems: string[] = [];
  const { given, refused, values } = input;
  const tlsGiven = [...SERVER_TLS_KEYS, ...CLIENT_TLS_KEYS].filter(given);
  const serverGiven = SERVER_TLS_KEYS.filter(given);

  if (!given("tcpPort")) {
    if (tlsGiven.length > 0) {
      problems.push(
        `${tlsGiven.map(full).join(", ")} ${tlsGiven.length === 1 ? "is" : "are"} set but ${full("tcpPort")} is not; ` +
          `TLS material is only for the TCP listener (it would be uploaded into the container for nothing): set ${full("tcpPort")}, or remove them`,
      );
    }
    return problems;
  }
  if (serverGiven.length > 0 && serverGiven.length < SERVER_TLS_KEYS.length) {
    const missing = SERVER_TLS_KEYS.filter((k) => !serverGiven.includes(k)).map(full);
    problems.push(
      `${serverGiven.map(full).join(", ")} ${serverGiven.length === 1 ? "is" : "are"} set but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not; ` +
        `set all three TLS settings (CA, server certificate, server key) or none`,
    );
  }
  if (refused("tcpPort")) return problems;
  if (serverGiven.length === 0) {
    problems.push(
      `${full("tcpPort")} is ${input.tcpPort} but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. ` +
        `Set ${full("tlsCa")}, ${full("tlsCert")} and ${full("tlsKey")} (as secrets), or remove ${full("tcpPort")}`,
    );
    return problems;
  }
  const clientMissing = CLIENT_TLS_KEYS.filter((k) => !given(k));
  if (clientMissing.length > 0) {
    problems.push(
      `${full("tcpPort")} is ${input.tcpPort} but ${clientMissing.map(full).join(" and ")} ${clientMissing.length === 1 ? "is" : "are"} not set; ` +
        `buildkitd given a CA accepts only clients with a certificate it signed, and the smoke test connects with this one: ` +
        `set ${full("tlsClientCert")} and ${full("tlsClientKey")} (as secrets)`,
    );
  }
  if ([...SERVER_TLS_KEYS, ...CLIENT_TLS_KEYS].some(refused) || problems.length > 0) return problems;

  const ca = readCertificate(input, "tlsCa", values.tlsCa);
  const server = readCertificate(input, "tlsCert", values.tlsCert);
  const serverKey = readKey(input, "tlsKey", values.tlsKey);
  const client = readCertificate(input, "tlsClientCert", values.tlsClientCert);
  const clientKey = readKey(input, "tlsClientKey", values.tlsClientKey);
  const unreadable = [ca, server, serverKey, client, clientKey].flatMap((p) => (p.problem ? [p.problem] : []));
  if (unreadable.length > 0) return [...problems, ...unreadable];

  const now = new Date();
  const pairs = [
    { certKey: "tlsCert", keyKey: "tlsKey", cert: server.cert!, key: serverKey.key!, usage: "1.3.6.1.5.5.7.3.1", usageName: "serverAuth" },
    { certKey: "tlsClientCert", keyKey: "tlsClientKey", cert: client.cert!, key: clientKey.key!, usage: "1.3.6.1.5.5.7.3.2", usageName: "clientAuth" },
  ] as const;
  for (const { certKey, keyKey, cert, key, usage, usageName } of pairs) {
    if (!cert.checkPrivateKey(key)) problems.push(`${full(keyKey)} is not the private key of ${full(certKey)}; set the key the certificate was issued for`);
    if (!cert.verify(ca.cert!.publicKey)) {
      problems.push(`${full(certKey)} is not signed by ${full("tlsCa")} (issuer ${JSON.stringify(cert.issuer.replace(/\n/g, ", "))}); sign it with that CA, which both sides trust`);
    }
    if (new Date(cert.validTo) < now || new Date(cert.validFrom) > now) {
      problems.push(`${full(certKey)} is valid from ${cert.validFrom} to ${cert.validTo}, not now; issue a current one`);
    }
    if (cert.keyUsage !== undefined && !cert.keyUsage.includes(usage)) {
      problems.push(`${full(certKey)} has extended key usage ${cert.keyUsage.join(", ")} without ${usageName} (${usage}); issue it for ${usageName}`);
    }
  }
  const missing = [
    ...names.dns.filter((name) => server.cert!.checkHost(name, { subject: "never" }) === undefined).map((name) => `DNS:${name}`),
    ...names.ips.filter((ip) => server.cert!.checkIP(ip) === undefined).map((ip) => `IP:${ip}`),
  ];
  if (missing.length > 0) {
    problems.push(
      `${full("tlsCert")} does not cover ${missing.join(" and ")} in its subjectAltName (it has ${server.cert!.subjectAltName ?? "none"}); ` +
        `${names.dialledBy}: issue it with subjectAltName=${missing.join(",")}`,
    );
  }
  return problems;
}

/** The five PEMs as one value, when all were given (and valid: the caller has thrown otherwise). */
export function tlsSettingsOf(values: Partial<Record<TlsKey, string>>): TlsSettings | undefined {
  const { tlsCa, tlsCert, tlsKey, tlsClientCert, tlsClientKey } = values;
  return tlsCa && tlsCert && tlsKey && tlsClientCert && tlsClientKey
    ? { ca: tlsCa, cert: tlsCert, key: tlsKey, clientCert: tlsClientCert, clientKey: tlsClientKey }
    : undefined;
}
