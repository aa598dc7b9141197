/**
 * The change-impact table is complete and published: one row per config key,
 * and the README's "What each change does" section is exactly its rendering.
 */
import * as fs from "fs";
import * as path from "path";

import { CHANGE_IMPACT, RESOURCES, renderChangeImpactTable } from "../../../components/docker/change-impact";
import { DOCKER_KEYS } from "../../../components/docker/config";

const README = fs.readFileSync(path.join(__dirname, "../../../README.md"), "utf8");
const START = "<!-- change-impact:start (rendered from components/docker/change-impact.ts) -->";
const END = "<!-- change-impact:end -->";

describe("the change-impact table", () => {
  it("has a row for every key the program reads, and none for keys it does not", () => {
    const missing = DOCKER_KEYS.filter((key) => !Object.hasOwn(CHANGE_IMPACT, key));
    expect(missing).toEqual([]);
    expect(Object.keys(CHANGE_IMPACT).filter((key) => !(DOCKER_KEYS as string[]).includes(key))).toEqual([]);
  });

  it("names only the stack's resources, and says why for every row", () => {
    for (const [key, row] of Object.entries(CHANGE_IMPACT)) {
      expect([key, Object.keys(row.ops).filter((r) => !(RESOURCES as readonly string[]).includes(r))]).toEqual([key, []]);
      expect(row.why.length).toBeGreaterThan(10);
    }
  });

  it("loses the cache exactly where the volume is replaced", () => {
    for (const [key, row] of Object.entries(CHANGE_IMPACT)) {
      expect([key, row.cacheKept]).toEqual([key, row.ops.cacheVolume !== "replace"]);
    }
  });

  it("is what the README publishes under \"What each change does\"", () => {
    const start = README.indexOf(START);
    const end = README.indexOf(END);
    expect(start).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    expect(README.slice(start + START.length, end).trim()).toBe(renderChangeImpactTable());
  });
});
