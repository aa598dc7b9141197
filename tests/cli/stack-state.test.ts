/**
 * What the CLIs read from a stack, without an engine: secrets in exported
 * state (as `pulumi stack export --show-secrets` writes them) and flags.
 */
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

import { UsageError, parseCli } from "../../cli/options";
import { secretUploadFiles, unwrapSecrets } from "../../cli/stack-state";

/** A secret as exported state holds it once decrypted: Pulumi's signature, and the value as JSON. */
const secret = (value: unknown) => ({ [specialSigKey]: specialSecretSig, plaintext: JSON.stringify(value) });

describe("secrets in exported state", () => {
  const uploads = [
    { file: "/etc/buildkit/buildkitd.toml", content: "debug = false" },
    { file: "/etc/buildkit/tls/key.pem", content: "-----BEGIN PRIVATE KEY-----" },
  ];

  it("are unwrapped by Pulumi's own signature, nested or whole", () => {
    expect(unwrapSecrets({ uploads: secret(uploads) })).toEqual({ uploads });
    expect(unwrapSecrets({ uploads: [uploads[0], { file: uploads[1].file, content: secret(uploads[1].content) }] })).toEqual({ uploads });
  });

  it("leave values alone that only look like a secret", () => {
    const notASecret = { "4dabf18193072939515e22adc298bad5": "1", plaintext: "\"x\"" };
    expect(unwrapSecrets(notASecret)).toEqual(notASecret);
  });

  it("mark the uploads they hold, so their contents are compared but never printed", () => {
    expect(secretUploadFiles({ uploads: secret(uploads) })).toEqual(new Set(uploads.map((u) => u.file)));
    expect(secretUploadFiles({ uploads: [uploads[0], { file: uploads[1].file, content: secret(uploads[1].content) }] })).toEqual(new Set([uploads[1].file]));
    expect(secretUploadFiles({ uploads })).toEqual(new Set());
  });
});

describe("command-line flags", () => {
  const usage = "usage: test";

  it("accept --heal only where the command offers it", () => {
    expect(parseCli(["--stack", "dev", "--heal"], usage, true)).toMatchObject({ stack: "dev", heal: true });
    expect(parseCli(["--stack=dev"], usage, true)).toMatchObject({ stack: "dev", heal: false });
    expect(() => parseCli(["--stack", "dev", "--heal"], usage)).toThrow(UsageError);
    expect(() => parseCli(["--heal=yes"], usage, true)).toThrow(/unknown argument "--heal=yes"/);
    expect(() => parseCli(["--stack"], usage, true)).toThrow(/--stack needs a value/);
  });
});
