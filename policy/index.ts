// The buildkit-stack policy pack: `pulumi preview --policy-pack policy`.
import { PolicyPack } from "@pulumi/policy";

import { policies } from "./policies";

new PolicyPack("buildkit-stack", { policies });
