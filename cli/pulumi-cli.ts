/**
 * The pulumi CLI for the Automation API, asked for its version the moment a
 * CLI process starts.
 *
 * `LocalWorkspace.create` first runs `pulumi version` (~0.25 s idle), and
 * nothing can run before it answers; loading the Automation API takes longer
 * still (~0.4 s). Imported before anything else, this module starts `pulumi
 * version` while the rest loads, and {@link pulumiCli} hands the
 * workspace a PulumiCommand made from that answer: `npm run drift` starts
 * its preview that much sooner. It must not import the Automation API at
 * load time, or the two would not overlap.
 */
import { execFile } from "child_process";
import { createRequire } from "module";

import type { PulumiCommand } from "@pulumi/pulumi/automation";

const versionOutput = new Promise<string | undefined>((resolve) => {
  execFile("pulumi", ["version"], { env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" } }, (error, stdout) =>
    resolve(error ? undefined : stdout.trim()),
  );
});
// Nobody may await it (a usage error exits first); it must not keep the process alive then.
versionOutput.catch(() => undefined);

/** PulumiCommand's constructor: public at runtime, private in its types (`PulumiCommand.get` runs the CLI itself). */
type PulumiCommandConstructor = new (command: string, version: PulumiCommand["version"]) => PulumiCommand;

/**
 * The `pulumi` on PATH with the version it reported at start. When that
 * failed or is not a Pulumi 3 version, the Automation API's own
 * `PulumiCommand.get` asks again and says what is wrong.
 */
export async function pulumiCli(): Promise<PulumiCommand> {
  // Loaded here, after the CLI's own imports, so that `pulumi version` ran alongside them.
  const { PulumiCommand } = await import("@pulumi/pulumi/automation");
  // The SDK's own semver, so the version is the kind of object the Automation API compares.
  const semver = createRequire(require.resolve("@pulumi/pulumi/package.json"))("semver") as { parse(v: string): PulumiCommand["version"] };
  const version = semver.parse((await versionOutput) ?? "");
  if (version === null || version.major !== 3) return PulumiCommand.get();
  return new (PulumiCommand as unknown as PulumiCommandConstructor)("pulumi", version);
}
