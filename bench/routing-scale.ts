/**
 * `bash scripts/run-ts.sh bench/routing-scale.ts [HOSTS...]`: what the
 * routing part's strategies would do on a larger fleet than this machine can
 * run. No engine and no build: the hosts each strategy picks for the routing
 * bench's workload (bench/routing.ts), with `npm run route`'s own code
 * (cli/route.ts) for the hashed strategies, and the cache a host would have
 * (a key's build is cached when the same host built that key in an earlier
 * round; then its CACHEABLE_STEPS of CACHEABLE_STEPS + 1 steps are, as in the
 * measured run). It says where builds land, not how long they take.
 *
 * Two workloads per fleet size: the bench's own (20 keys) and one scaled with
 * the fleet (the bench's repositories and monorepo contexts × hosts / 3).
 */
import type { FleetEndpoint } from "../components/docker/buildkit-fleet";
import { assignKeys, routeKey } from "../cli/route";
import { CACHEABLE_STEPS, HOST_NAMES, MONOREPO_PERIODS, REPOS, ROUNDS, buildsIn, seededRandom, workloadKeys } from "./routing";

export type SimStrategy = "route" | "plain-hash" | "random" | "round-robin";

export interface SimResult {
  strategy: SimStrategy;
  /** Cached steps / all steps, rounds 2 on, under the model above. */
  cachedRatio: number;
  /** The busiest host's builds over the mean, all rounds. */
  imbalance: number;
  /** The busiest host's builds over the mean in the worst round: what a round waits for. */
  worstRoundImbalance: number;
}

/** `hosts` endpoints; three are named as the bench's fleet (ring positions follow names), so the model can be held against the measured run. */
export function fleetOf(hosts: number): FleetEndpoint[] {
  if (hosts === HOST_NAMES.length) return HOST_NAMES.map((name, i) => ({ name, buildkitHost: `tcp://10.0.${i}.1:1234` }));
  return Array.from({ length: hosts }, (_, i) => ({ name: `host-${String(i + 1).padStart(2, "0")}`, buildkitHost: `tcp://10.0.${i}.1:1234` }));
}

/** Each round's keys in submission order, as bench/routing.ts builds them. */
export function roundsOf(keys: { key: string; period: number }[], rounds = ROUNDS): string[][] {
  return Array.from({ length: rounds }, (_, r) => keys.filter(({ period }) => buildsIn(period, r + 1)).map(({ key }) => key));
}

export function simulate(strategy: SimStrategy, fleet: FleetEndpoint[], rounds: string[][], seed = 20): SimResult {
  const random = seededRandom(seed);
  let next = 0;
  const built = new Map<string, Set<string>>();
  const perHost = new Map<string, number>(fleet.map((h) => [h.name, 0]));
  let cached = 0;
  let steps = 0;
  let worstRound = 0;
  for (const [r, keys] of rounds.entries()) {
    const bounded = strategy === "route" ? assignKeys(fleet, keys) : undefined;
    const inRound = new Map<string, number>();
    for (const key of keys) {
      const host =
        strategy === "route" ? bounded!.get(key)!.name
        : strategy === "plain-hash" ? routeKey(fleet, key)[0].name
        : strategy === "random" ? fleet[Math.floor(random() * fleet.length)].name
        : fleet[next++ % fleet.length].name;
      const hosts = built.get(key) ?? new Set<string>();
      if (r > 0) {
        steps += CACHEABLE_STEPS + 1;
        if (hosts.has(host)) cached += CACHEABLE_STEPS;
      }
      hosts.add(host);
      built.set(key, hosts);
      perHost.set(host, perHost.get(host)! + 1);
      inRound.set(host, (inRound.get(host) ?? 0) + 1);
    }
    worstRound = Math.max(worstRound, Math.max(...inRound.values()) / (keys.length / fleet.length));
  }
  const total = [...perHost.values()].reduce((a, b) => a + b, 0);
  return { strategy, cachedRatio: cached / steps, imbalance: Math.max(...perHost.values()) / (total / fleet.length), worstRoundImbalance: worstRound };
}

function main(argv: string[]): void {
  const sizes = argv.length ? argv.map(Number) : [3, 50];
  for (const hosts of sizes) {
    if (!Number.isInteger(hosts) || hosts < 1) throw new Error(`a fleet size is a whole number ≥ 1, got ${JSON.stringify(hosts)}`);
    const fleet = fleetOf(hosts);
    const scale = Math.max(1, Math.round(hosts / 3));
    const workloads: [string, { key: string; period: number }[]][] = [
      [`the bench's workload (${REPOS} repos + ${MONOREPO_PERIODS.length} monorepo contexts)`, workloadKeys()],
    ];
    if (scale > 1) workloads.push(
      [
        `scaled ×${scale} (${REPOS * scale} repos + ${MONOREPO_PERIODS.length * scale} monorepo contexts)`,
        workloadKeys(REPOS * scale, Array.from({ length: MONOREPO_PERIODS.length * scale }, (_, i) => MONOREPO_PERIODS[i % MONOREPO_PERIODS.length])),
      ],
    );
    for (const [title, keys] of workloads) {
      const rounds = roundsOf(keys);
      console.log(`\n${hosts} hosts, ${title}, ${ROUNDS} rounds of ${rounds.map((r) => r.length).join(", ")} builds:`);
      console.log("  strategy      cached(r2+)  imbalance  worst round");
      for (const strategy of ["route", "plain-hash", "random", "round-robin"] as const) {
        const s = simulate(strategy, fleet, rounds);
        console.log(`  ${strategy.padEnd(12)}  ${s.cachedRatio.toFixed(3).padStart(11)}  ${s.imbalance.toFixed(2).padStart(9)}  ${s.worstRoundImbalance.toFixed(2).padStart(11)}`);
      }
      // What one routing decision costs at this size (in-process, node already started): the bounded assignment of a round's keys.
      const started = performance.now();
      const repeats = 20;
      for (let i = 0; i < repeats; i++) assignKeys(fleet, rounds[0]);
      console.log(`  bounded assignment of round 1's ${rounds[0].length} keys: ${((performance.now() - started) / repeats).toFixed(1)} ms per call`);
    }
  }
}

if (require.main === module) main(process.argv.slice(2));
