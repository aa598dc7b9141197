/**
 * bench/routing-scale.ts: where each routing strategy sends the routing
 * bench's workload on a fleet of any size, with npm run route's own code, and
 * what a host would have cached. Checked here: the model's bookkeeping, not
 * any figure (those come from running it).
 */
import { CACHEABLE_STEPS, HOST_NAMES, MONOREPO_PERIODS, REPOS, ROUNDS, workloadKeys } from "../../bench/routing";
import { fleetOf, roundsOf, simulate } from "../../bench/routing-scale";
import { LOAD_FACTOR, routeKey } from "../../cli/route";

const fullShare = CACHEABLE_STEPS / (CACHEABLE_STEPS + 1);

describe("the routing model at scale", () => {
  it("builds the rounds the bench submits: every key in round 1, then each on its period", () => {
    const rounds = roundsOf(workloadKeys());
    expect(rounds).toHaveLength(ROUNDS);
    expect(rounds[0]).toHaveLength(REPOS + MONOREPO_PERIODS.length);
    expect(rounds[1]).toHaveLength(REPOS + MONOREPO_PERIODS.filter((p) => 2 % p === 0).length);
  });

  it("names a 3-host fleet as the bench's hosts (ring positions follow names), other sizes host-NN", () => {
    expect(fleetOf(3).map((h) => h.name)).toEqual([...HOST_NAMES]);
    const fifty = fleetOf(50);
    expect(new Set(fifty.map((h) => h.name)).size).toBe(50);
  });

  it("plain hashing keeps every key on its host: every later build has all its cacheable steps cached", () => {
    for (const hosts of [3, 7, 50]) {
      const result = simulate("plain-hash", fleetOf(hosts), roundsOf(workloadKeys()));
      expect(result.cachedRatio).toBeCloseTo(fullShare);
    }
  });

  it("round robin over as many hosts as a round has builds never returns a key to its host", () => {
    const rounds = roundsOf(workloadKeys());
    // 20, 18, 17, 19 builds on 50 hosts: the counter never wraps onto a host that built the same key.
    expect(simulate("round-robin", fleetOf(50), rounds).cachedRatio).toBe(0);
  });

  it("bounded loads keep every round within 1.25× an even share when keys outnumber hosts, and cache no more than plain hashing", () => {
    const keys = workloadKeys(40, Array.from({ length: 24 }, (_, i) => MONOREPO_PERIODS[i % MONOREPO_PERIODS.length]));
    for (const hosts of [3, 5, 10]) {
      const rounds = roundsOf(keys);
      const route = simulate("route", fleetOf(hosts), rounds);
      const bound = Math.max(...rounds.map((r) => Math.max(Math.ceil(r.length / hosts), Math.floor((LOAD_FACTOR * r.length) / hosts)) / (r.length / hosts)));
      expect(route.worstRoundImbalance).toBeLessThanOrEqual(bound + 1e-9);
      expect(route.cachedRatio).toBeLessThanOrEqual(simulate("plain-hash", fleetOf(hosts), rounds).cachedRatio + 1e-9);
    }
  });

  it("counts a build cached only on a host that built the same key before", () => {
    // One key, two rounds, two hosts: round robin sends it to the other host, plain hashing to the same.
    const rounds = [["a:."], ["a:."]];
    const fleet = fleetOf(2);
    expect(simulate("round-robin", fleet, rounds).cachedRatio).toBe(0);
    expect(simulate("plain-hash", fleet, rounds).cachedRatio).toBeCloseTo(fullShare);
    expect(routeKey(fleet, "a:.")).toHaveLength(2);
  });
});
