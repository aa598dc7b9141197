// Intentionally empty: no resources, no outputs. `pulumi up` of this program
// is the fixed cost of the CLI, the language host, node and ts-node.
import "@pulumi/pulumi";
