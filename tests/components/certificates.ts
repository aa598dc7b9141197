/**
 * Throwaway X.509 material for tests, made with openssl: config reads and
 * checks certificates with node:crypto, so unit tests need real ones. EC keys
 * keep it fast; every set lives in its own temporary directory.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface CertificateSet {
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
  /** Where the PEM files are (ca.pem, server.pem, server.key, client.pem, client.key). */
  dir: string;
}

export interface CertificateOptions {
  /** subjectAltName of the server certificate, like ["DNS:buildkitd", "IP:127.0.0.1"]; none when empty. */
  serverSans: string[];
  /** Issue the server and client certificates already expired. */
  expired?: boolean;
  /** extendedKeyUsage of the server certificate (default serverAuth). */
  serverUsage?: string;
}

function openssl(dir: string, args: string[]): void {
  const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${result.stderr}${result.error ?? ""}`);
}

/** A CA, a server certificate with the given SANs and a client certificate, all signed by the CA. */
export function makeCertificates(options: CertificateOptions): CertificateSet {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-stack-certs-"));
  const key = (file: string) => openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
  key("ca.key");
  openssl(dir, ["req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=buildkit-stack test CA", "-out", "ca.pem"]);
  const server = [
    ...(options.serverSans.length > 0 ? [`subjectAltName=${options.serverSans.join(",")}`] : []),
    `extendedKeyUsage=${options.serverUsage ?? "serverAuth"}`,
  ];
  fs.writeFileSync(path.join(dir, "server.ext"), server.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, cn] of [["server", "buildkitd"], ["client", "buildkit client"]]) {
    key(`${name}.key`);
    openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`]);
    // OpenSSL 3.0 has no -not_after for x509 -req; a negative -days ends the validity before it starts.
    const validity = ["-days", options.expired ? "-1" : "2"];
    openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", ...validity, "-extfile", `${name}.ext`, "-out", `${name}.pem`]);
  }
  const read = (file: string) => fs.readFileSync(path.join(dir, file), "utf8");
  return { ca: read("ca.pem"), cert: read("server.pem"), key: read("server.key"), clientCert: read("client.pem"), clientKey: read("client.key"), dir };
}

/** The set as the five `tls*` settings of a stack or fleet host (without the `buildkit:` prefix). */
export function tlsSettings(set: CertificateSet): Record<"tlsCa" | "tlsCert" | "tlsKey" | "tlsClientCert" | "tlsClientKey", string> {
  return { tlsCa: set.ca, tlsCert: set.cert, tlsKey: set.key, tlsClientCert: set.clientCert, tlsClientKey: set.clientKey };
}
