/**
 * bench/routing.ts's workload and arithmetic, without engines: the rounds it
 * submits, the Dockerfiles it generates, the seeded draws, how a strategy's
 * builds become the reported figures, and how steps are counted from
 * buildctl's and buildx's progress output. (The part itself runs only in
 * `npm run bench -- --only routing`: performance is measured there, never
 * asserted in tests.)
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { countSteps } from "../../bench/lib";
import { CACHEABLE_STEPS, MONOREPO_PERIODS, REPOS, ROUNDS, StrategyOutcome, dockerfile, seededRandom, summarizeOutcome, workload } from "../../bench/routing";

describe("the routing workload", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "routing-workload-"));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const rounds = workload(root, "run-1");

  it("is at least 12 repositories and a monorepo of at least 8 contexts, over at least 3 rounds", () => {
    expect(REPOS).toBeGreaterThanOrEqual(12);
    expect(MONOREPO_PERIODS.length).toBeGreaterThanOrEqual(8);
    expect(rounds).toHaveLength(ROUNDS);
    expect(ROUNDS).toBeGreaterThanOrEqual(3);
  });

  it("builds every key in round 1, every repository in every round, and a monorepo context only in the rounds its period divides", () => {
    expect(rounds[0]).toHaveLength(REPOS + MONOREPO_PERIODS.length);
    for (const [r, jobs] of rounds.entries()) {
      const keys = jobs.map((job) => job.key);
      expect(keys.filter((key) => key.includes("/service-"))).toHaveLength(REPOS);
      const parts = MONOREPO_PERIODS.map((period, j) => ({ key: `bench.example/acme/monorepo:services/part-${j + 1}`, period }));
      for (const { key, period } of parts) expect(keys.includes(key)).toBe(r === 0 || (r + 1) % period === 0);
      // A new commit per round for every key built.
      for (const job of jobs) expect(job.commit).toBe(`${job.key}@r${r + 1}`);
    }
    // The contexts change at different rates: the rounds are not all the same size.
    expect(new Set(rounds.map((jobs) => jobs.length)).size).toBeGreaterThan(1);
  });

  it("writes a Dockerfile per key: its cacheable RUN steps name the key and the run, and only the last step reads the commit", () => {
    const job = rounds[0][0];
    const text = fs.readFileSync(path.join(job.dir, "Dockerfile"), "utf8");
    expect(text).toBe(dockerfile(job.key, "run-1"));
    const runs = text.split("\n").filter((line) => line.startsWith("RUN "));
    expect(runs).toHaveLength(CACHEABLE_STEPS + 1);
    expect(runs[0]).toContain(`${job.key} run-1`);
    expect(runs.slice(0, -1).some((line) => line.includes("COMMIT"))).toBe(false);
    expect(text.indexOf("ARG COMMIT")).toBeGreaterThan(text.lastIndexOf(runs[runs.length - 2]));
    expect(runs[runs.length - 1]).toContain("$COMMIT");
    // Real work, not sleeps.
    expect(text).not.toMatch(/sleep/);
    expect(dockerfile(job.key, "run-2")).not.toBe(text);
  });

  it("draws the same hosts for the same seed, spread over all of them", () => {
    const draw = (seed: number) => Array.from({ length: 200 }, () => Math.floor(seededRandom(seed)() * 3));
    const a = seededRandom(20);
    const b = seededRandom(20);
    const first = Array.from({ length: 300 }, () => Math.floor(a() * 3));
    expect(Array.from({ length: 300 }, () => Math.floor(b() * 3))).toEqual(first);
    for (const host of [0, 1, 2]) expect(first.filter((h) => h === host).length).toBeGreaterThan(60);
    expect(draw(1)).not.toEqual(draw(2));
  });
});

describe("what a strategy's builds add up to", () => {
  const build = (round: number, host: string, cached: number) => ({ key: `k${round}${host}`, round, host, seconds: 1, cached, executed: CACHEABLE_STEPS + 1 - cached });
  const outcome: StrategyOutcome = {
    strategy: "random",
    rounds: [10, 4, 3],
    cacheLeftBefore: {},
    builds: [build(1, "a", 0), build(1, "b", 0), build(1, "a", 0), build(2, "a", CACHEABLE_STEPS), build(2, "c", 0), build(3, "a", CACHEABLE_STEPS)],
  };

  it("counts cached steps from round 2 on, over all steps of those rounds", () => {
    const summary = summarizeOutcome(outcome, ["a", "b", "c"]);
    expect(summary.cachedRatio).toBeCloseTo((2 * CACHEABLE_STEPS) / (3 * (CACHEABLE_STEPS + 1)));
    expect(summary.round1Cached).toBe(0);
  });

  it("sums the wall time of all rounds and of rounds 2 on, and divides the busiest host's builds by the mean", () => {
    const summary = summarizeOutcome(outcome, ["a", "b", "c"]);
    expect(summary.totalSeconds).toBe(17);
    expect(summary.laterSeconds).toBe(7);
    expect(summary.perHost).toEqual({ a: 4, b: 1, c: 1 });
    expect(summary.imbalance).toBe(2);
  });

  it("reports cached steps in round 1, which the part refuses (the caches were not emptied)", () => {
    expect(summarizeOutcome({ ...outcome, builds: [build(1, "a", 3)] }, ["a"]).round1Cached).toBe(3);
  });
});

describe("counting steps in --progress=plain output", () => {
  it("counts the Dockerfile's RUN and COPY steps as buildctl and buildx print them, not context transfers or metadata", () => {
    const progress = [
      "#1 [internal] load build definition from Dockerfile",
      "#1 DONE 0.0s",
      "#2 [internal] load metadata for docker.io/library/busybox:latest",
      "#2 DONE 0.3s",
      "#3 [1/4] FROM docker.io/library/busybox:latest@sha256:abc",
      "#3 DONE 0.1s",
      "#4 [2/4] RUN echo a > /id",
      "#4 CACHED",
      "#5 [ 3/4] RUN head -c 6000000 /dev/urandom | gzip -6 | sha256sum > /work-1",
      "#5 DONE 1.2s",
      "#6 [stage-1 4/4] COPY note.txt /note.txt",
      "#6 DONE 0.0s",
      "#7 exporting to image",
      "#7 DONE 0.1s",
    ].join("\n");
    expect(countSteps(progress)).toEqual({ cached: 1, executed: 2 });
  });
});
