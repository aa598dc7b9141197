/**
 * Key material the CLIs hand to other programs as files (docker's
 * DOCKER_CERT_PATH, buildctl's --tlscert, buildx's --driver-opt), one way: a
 * directory only the user can enter (0700), files only the user can read
 * (0600, also when they existed before), and temporary ones removed when the
 * process ends — normally, on an error, or on SIGINT, SIGTERM or SIGHUP.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** A directory of private files. */
export interface PrivateFiles {
  dir: string;
  /** The absolute path of one of the files. */
  path(name: string): string;
  /** Removes the directory (a no-op for one that is kept). */
  remove(): void;
}

const temporary = new Set<string>();
const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
let handlersInstalled = false;

function removeAllTemporary(): void {
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
  temporary.clear();
}

/** Removes what is left on exit, and on a signal before the process dies of it as it would have. */
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", removeAllTemporary);
  for (const signal of SIGNALS) {
    process.once(signal, () => {
      removeAllTemporary();
      process.kill(process.pid, signal);
    });
  }
}

function writeAll(dir: string, files: Record<string, string>): void {
  fs.chmodSync(dir, 0o700);
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content, { mode: 0o600 });
    // An existing file keeps its mode on write.
    fs.chmodSync(file, 0o600);
  }
}

/** Files in a new temporary directory, removed by `remove()` or when the process ends, whichever comes first. */
export function temporaryPrivateFiles(prefix: string, files: Record<string, string>): PrivateFiles {
  installHandlers();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  temporary.add(dir);
  try {
    writeAll(dir, files);
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    temporary.delete(dir);
    throw error;
  }
  return {
    dir,
    path: (name) => path.join(dir, name),
    remove: () => {
      fs.rmSync(dir, { recursive: true, force: true });
      temporary.delete(dir);
    },
  };
}

/**
 * Files kept in `base/name` (buildx reads them on every build). `name` comes
 * from config: it must be one plain path segment, so nothing lands outside
 * `base` (`..`, `/`, a leading dot are refused).
 */
export function keptPrivateFiles(base: string, name: string, files: Record<string, string>): PrivateFiles {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.includes("..")) {
    throw new Error(`${JSON.stringify(name)} is not a plain directory name; refusing to write key material outside ${base}`);
  }
  const dir = path.join(base, name);
  fs.mkdirSync(base, { recursive: true, mode: 0o700 });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAll(dir, files);
  return { dir, path: (file) => path.join(dir, file), remove: () => undefined };
}
