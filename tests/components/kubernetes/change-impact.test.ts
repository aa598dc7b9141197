/**
 * The cluster's change-impact table is complete and published: one row per
 * key a cluster stack reads, consistent with itself, and docs/scale-out.md's
 * "What each change does on a cluster" section is exactly its rendering.
 */
import * as fs from "fs";
import * as path from "path";

import { CLUSTER_CHANGE_IMPACT, renderClusterChangeImpactTable } from "../../../components/kubernetes/change-impact";
import { CLUSTER_KEYS } from "../../../components/kubernetes/config";

const PAGE = fs.readFileSync(path.join(__dirname, "../../../docs/scale-out.md"), "utf8");
const START = "<!-- cluster-change-impact:start (rendered from components/kubernetes/change-impact.ts) -->";
const END = "<!-- cluster-change-impact:end -->";

describe("the cluster's change-impact table", () => {
  it("has a row for every key a cluster stack reads, and none for others", () => {
    expect(Object.keys(CLUSTER_CHANGE_IMPACT).sort()).toEqual([...CLUSTER_KEYS].sort());
  });

  it("replaces every pod exactly where the pod template or the StatefulSet is replaced, and re-proves them", () => {
    for (const [key, row] of Object.entries(CLUSTER_CHANGE_IMPACT)) {
      const templateChanged = row.ops.proofs === "replace";
      expect([key, templateChanged]).toEqual([key, row.pods === "rolled one at a time" || row.pods === "all replaced at once"]);
      expect([key, row.pods === "all replaced at once"]).toEqual([key, row.ops.statefulSet === "replace"]);
      expect(row.why.length).toBeGreaterThan(10);
    }
  });

  it("is what docs/scale-out.md publishes", () => {
    const start = PAGE.indexOf(START);
    const end = PAGE.indexOf(END);
    expect(start).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    expect(PAGE.slice(start + START.length, end).trim()).toBe(renderClusterChangeImpactTable());
  });
});
