/**
 * Key material as files (cli/private-files.ts): private to the user, and a
 * temporary directory gone when the process ends — normally, or killed by
 * SIGINT or SIGTERM as a CI runner or ^C would. Run in child processes, as
 * the CLIs run.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { keptPrivateFiles, temporaryPrivateFiles } from "../../cli/private-files";

const MODULE = path.resolve(__dirname, "../../cli/private-files.ts");
const PRELOAD = path.resolve(__dirname, "../../runtime/preload.js");

/**
 * A node process that writes a key with temporaryPrivateFiles, prints the
 * directory, then waits (for a signal) or exits at once.
 */
function child(mode: "wait" | "exit"): Promise<{ dir: string; done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; kill(signal: NodeJS.Signals): void }> {
  const program = `
    const { temporaryPrivateFiles } = require(${JSON.stringify(MODULE)});
    const files = temporaryPrivateFiles("bk-test-keys", { "key.pem": "-----BEGIN PRIVATE KEY-----" });
    process.stdout.write(files.dir + "\\n");
    if (${JSON.stringify(mode)} === "wait") setInterval(() => undefined, 1000); else process.exit(3);`;
  const proc = spawn(process.execPath, ["-r", PRELOAD, "-e", program], { stdio: ["ignore", "pipe", "inherit"] });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (chunk) => {
      out += String(chunk);
      if (out.includes("\n")) resolve({ dir: out.trim(), done, kill: (signal) => proc.kill(signal) });
    });
    proc.on("exit", () => (out.includes("\n") ? undefined : reject(new Error("child exited before writing its files"))));
  });
}

describe("temporary key files", () => {
  it("are private while they exist: a 0700 directory, 0600 files", () => {
    const files = temporaryPrivateFiles("bk-test-keys", { "key.pem": "secret", "ca.pem": "ca" });
    try {
      expect(fs.statSync(files.dir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(files.path("key.pem")).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(files.path("ca.pem"), "utf8")).toBe("ca");
    } finally {
      files.remove();
    }
    expect(fs.existsSync(files.dir)).toBe(false);
  });

  it("are removed when the process exits without removing them", async () => {
    const run = await child("exit");
    expect((await run.done).code).toBe(3);
    expect(fs.existsSync(run.dir)).toBe(false);
  });

  it.each(["SIGINT", "SIGTERM"] as const)("are removed when the process is killed by %s, which still ends it", async (signal) => {
    const run = await child("wait");
    expect(fs.existsSync(path.join(run.dir, "key.pem"))).toBe(true);
    run.kill(signal);
    expect(await run.done).toEqual({ code: null, signal });
    expect(fs.existsSync(run.dir)).toBe(false);
  });
});

describe("kept key files (buildx reads them on every build)", () => {
  it("go under the base directory, private, and an existing key is made private again", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "bk-test-kept-"));
    try {
      fs.mkdirSync(path.join(base, "amd"), { mode: 0o755 });
      fs.writeFileSync(path.join(base, "amd", "key.pem"), "old", { mode: 0o644 });
      const files = keptPrivateFiles(base, "amd", { "key.pem": "new" });
      expect(files.dir).toBe(path.join(base, "amd"));
      expect(fs.statSync(files.dir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(files.path("key.pem")).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(files.path("key.pem"), "utf8")).toBe("new");
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it.each(["../escape", "..", "/etc", ".hidden", "a/b", ""])("refuse a name that is not one plain path segment: %j", (name) => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "bk-test-kept-"));
    try {
      expect(() => keptPrivateFiles(base, name, { "key.pem": "k" })).toThrow(/is not a plain directory name; refusing to write key material outside/);
      expect(fs.readdirSync(base)).toEqual([]);
      expect(fs.existsSync(path.join(path.dirname(base), "escape"))).toBe(false);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
