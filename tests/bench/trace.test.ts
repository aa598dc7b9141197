/**
 * bench/trace.ts's process timelines: strace's lines, as strace 6 writes them
 * with -f -ttt (the pid padded to five columns below 10000, unpadded above),
 * become the phases of a drift check.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { driftPhases, previewPhases, readExecs } from "../../bench/trace";

function straceLog(lines: string[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trace-test-")), "execs.log");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

describe("strace timelines", () => {
  it("reads execs and exits whether strace padded the pid or not", () => {
    const file = straceLog([
      '5798  1000.000000 execve("/usr/bin/sh", ["sh", "-c", "ls"], 0x7ffc /* 35 vars */) = 0',
      '5799  1000.250000 execve("/usr/bin/ls", ["ls"], 0x55ba /* 35 vars */) = 0',
      "5799  1000.500000 +++ exited with 0 +++",
      '12345 1000.600000 execve("/usr/bin/true", ["true"], 0x55ba /* 35 vars */) = 0',
      "12345 1000.700000 +++ exited with 0 +++",
      "5798  1001.000000 +++ exited with 0 +++",
    ]);
    const execs = readExecs(file);
    expect(execs.map((e) => [e.pid, e.argv[0]])).toEqual([[5798, "sh"], [5799, "ls"], [12345, "true"]]);
    expect(execs[0].start).toBe(0);
    expect(execs[1].start).toBeCloseTo(0.25);
    expect(execs[1].end).toBeCloseTo(0.5);
    expect(execs[2].end).toBeCloseTo(0.7);
    expect(execs[0].end).toBeCloseTo(1);
  });

  it("leaves out a failed execve (PATH lookups): only the program that ran", () => {
    const file = straceLog([
      '7001  5.000000 execve("/usr/local/bin/node", ["node"], 0x1 /* 3 vars */) = -1 ENOENT (No such file or directory)',
      '7001  5.000100 execve("/usr/bin/node", ["node"], 0x1 /* 3 vars */) = 0',
    ]);
    expect(readExecs(file).map((e) => e.argv[0])).toEqual(["node"]);
  });

  it("splits npm run drift into npm, drift's start, its preview and what follows", () => {
    const file = straceLog([
      '100   10.00 execve("/usr/bin/npm", ["npm", "run", "drift"], 0x1 /* 3 vars */) = 0',
      '101   10.30 execve("/usr/bin/node", ["node", "-r", "runtime/preload.js", "/repo/cli/drift.ts"], 0x1 /* 3 vars */) = 0',
      '102   10.35 execve("/p/bin/pulumi", ["pulumi", "version"], 0x1 /* 3 vars */) = 0',
      "102   10.60 +++ exited with 0 +++",
      '103   10.80 execve("/p/bin/pulumi", ["pulumi", "preview", "--refresh"], 0x1 /* 3 vars */) = 0',
      "103   12.00 +++ exited with 0 +++",
      '104   12.10 execve("/usr/bin/docker", ["docker", "inspect"], 0x1 /* 3 vars */) = 0',
      "104   12.20 +++ exited with 0 +++",
      "101   12.30 +++ exited with 0 +++",
      "100   12.40 +++ exited with 0 +++",
    ]);
    const phases = Object.fromEntries(driftPhases(readExecs(file)).map((p) => [p.phase, p.seconds]));
    expect(phases["npm started → drift's node started (npm, scripts/run-ts.sh, env.sh)"]).toBeCloseTo(0.3);
    expect(phases["drift's node started → pulumi preview --refresh started (preload, Automation API, workspace)"]).toBeCloseTo(0.5);
    expect(phases["  meanwhile: pulumi version"]).toBeCloseTo(0.25);
    expect(phases["pulumi preview --refresh: whole"]).toBeCloseTo(1.2);
    expect(phases["preview exited → drift exited (1 docker calls, report)"]).toBeCloseTo(0.4);
    expect(phases["total: npm start → exit"]).toBeCloseTo(2.4);
  });

  const preview = (providersFirst: boolean) =>
    readExecs(
      straceLog([
        '200   20.00 execve("/p/bin/pulumi", ["pulumi", "preview"], 0x1 /* 3 vars */) = 0',
        '201   20.20 execve("/p/bin/pulumi-language-nodejs", ["pulumi-language-nodejs"], 0x1 /* 3 vars */) = 0',
        `202   ${providersFirst ? "20.60" : "21.20"} execve("/p/bin/pulumi-resource-docker", ["pulumi-resource-docker"], 0x1 /* 3 vars */) = 0`,
        `203   ${providersFirst ? "20.70" : "21.30"} execve("/p/bin/pulumi-resource-command", ["pulumi-resource-command"], 0x1 /* 3 vars */) = 0`,
        '204   20.90 execve("/usr/bin/node", ["node", "/repo/node_modules/@pulumi/pulumi/cmd/run"], 0x1 /* 3 vars */) = 0',
        "204   21.80 +++ exited with 0 +++",
        "200   22.00 +++ exited with 0 +++",
      ]),
    );

  it("splits a preview between its milestones in the order they happened: program first without refresh, providers first with it", () => {
    for (const providersFirst of [false, true]) {
      const phases = previewPhases(preview(providersFirst));
      const steps = phases.filter((p) => p.phase.includes(" → ") && !p.phase.startsWith("total"));
      for (const p of phases) expect(p.seconds).toBeGreaterThanOrEqual(0);
      // Consecutive milestones: they add up to the whole run.
      expect(steps.reduce((sum, p) => sum + p.seconds, 0)).toBeCloseTo(2.0);
      expect(phases.find((p) => p.phase === "total: CLI start → exit")?.seconds).toBeCloseTo(2.0);
      expect(phases.find((p) => p.phase === "program's node: whole life")?.seconds).toBeCloseTo(0.9);
      const order = steps.map((p) => p.phase.split(" → ")[0]);
      expect(order.indexOf("docker provider started") < order.indexOf("program's node started")).toBe(providersFirst);
    }
    expect(previewPhases(preview(true)).find((p) => p.phase === "docker provider started → command provider started")?.seconds).toBeCloseTo(0.1);
  });
});
