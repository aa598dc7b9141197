/** The daemon itself, the same in a container and in a pod (components/core/buildkitd.ts). */
import { daemonCommand, DEFAULT_IMAGE, DEFAULT_ROOTLESS_IMAGE, modeOf, SOCKET, STATE_PATH, workersProbe } from "../../../components/core/buildkitd";

const TLS = { ca: "ca", cert: "cert", key: "key", clientCert: "cc", clientKey: "ck" };

describe("buildkitd's command line", () => {
  it("reads only its rendered config when it serves its unix socket alone", () => {
    expect(daemonCommand({ rootless: false })).toEqual(["--config", "/etc/buildkit/buildkitd.toml"]);
  });

  it("keeps the unix socket beside a TCP listener with mTLS on 1234", () => {
    expect(daemonCommand({ rootless: false, tcpPort: 9999, tls: TLS })).toEqual([
      "--config", "/etc/buildkit/buildkitd.toml",
      "--addr", "unix:///run/buildkit/buildkitd.sock", "--addr", "tcp://0.0.0.0:1234",
      "--tlscacert", "/etc/buildkit/tls/ca.pem", "--tlscert", "/etc/buildkit/tls/cert.pem", "--tlskey", "/etc/buildkit/tls/key.pem",
    ]);
  });

  it("runs rootless without a process sandbox, on uid 1000's socket", () => {
    expect(daemonCommand({ rootless: true, tcpPort: 1, tls: TLS })).toEqual(expect.arrayContaining(["--oci-worker-no-process-sandbox", SOCKET.rootless]));
    expect(daemonCommand({ rootless: true })).toEqual(["--config", "/etc/buildkit/buildkitd.toml", "--oci-worker-no-process-sandbox"]);
  });
});

describe("the daemon's image, state and proof of life", () => {
  it("keeps the cache where each image keeps it", () => {
    expect(STATE_PATH[modeOf({ rootless: false })]).toBe("/var/lib/buildkit");
    expect(STATE_PATH[modeOf({ rootless: true })]).toBe("/home/user/.local/share/buildkit");
  });

  it("runs BuildKit's pinned release, rootless from its own tag", () => {
    expect(DEFAULT_IMAGE).toBe("moby/buildkit:v0.32.2");
    expect(DEFAULT_ROOTLESS_IMAGE).toBe("moby/buildkit:v0.32.2-rootless");
  });

  it("is up when it lists its workers on its own socket", () => {
    expect(workersProbe("privileged")).toEqual(["buildctl", "--addr", "unix:///run/buildkit/buildkitd.sock", "debug", "workers"]);
    expect(workersProbe("rootless")).toEqual(["buildctl", "--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "debug", "workers"]);
  });
});
