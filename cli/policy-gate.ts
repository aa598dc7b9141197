/**
 * The policy gate every deploy goes through: the CrossGuard pack in policy/
 * with policy/config.json (which stacks are production), as `npm run up`
 * (scripts/up.sh) and the deploy workflow pass them. A `pulumi up` a CLI runs
 * (`npm run drift -- --heal`) passes the same two, so a heal cannot deploy
 * what `npm run up` would refuse.
 */
import * as path from "path";

import { repoRoot } from "./options";

export const POLICY_PACK_DIR = path.join(repoRoot, "policy");
export const POLICY_CONFIG_FILE = path.join(POLICY_PACK_DIR, "config.json");

/** The Automation API's options for the gate (`--policy-pack DIR --policy-pack-config FILE`). */
export function policyGate(): { policyPacks: string[]; policyPackConfigs: string[] } {
  return { policyPacks: [POLICY_PACK_DIR], policyPackConfigs: [POLICY_CONFIG_FILE] };
}

/**
 * The same gate as command-line flags, for a command printed for a user to
 * run from the repository (relative paths there; absolute with `-C DIR`).
 */
export function policyGateFlags(workDir: string): string[] {
  const here = path.resolve(workDir) === repoRoot;
  const shown = (file: string) => (here ? path.relative(repoRoot, file) : file);
  return ["--policy-pack", shown(POLICY_PACK_DIR), "--policy-pack-config", shown(POLICY_CONFIG_FILE)];
}
