/**
 * Imported first by the stack CLIs (drift, doctor), for its effect: starts
 * what they will ask the pulumi CLI first (cli/pulumi-cli.ts) before the
 * rest of their modules, the Automation API among them, load.
 */
import { startPulumiEarly } from "./pulumi-cli";

startPulumiEarly(process.argv.slice(2));
