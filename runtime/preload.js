// @ts-check
/**
 * How node starts the program and the project's TypeScript CLIs: preloaded
 * by Pulumi.yaml (`nodeargs: --require ./runtime/preload.js`) and by
 * scripts/run-ts.sh. Every `pulumi up`, preview and drift check pays node's
 * start before the first resource is registered, and a Terraform plan of the
 * same stack takes ~2.4 s in all (docs/performance.md), so this file keeps
 * three things out of that start:
 *
 * 1. Compiling TypeScript. `.ts` files are transformed by sucrase (syntax
 *    only: `npm test` type-checks with tsc once) and the result is cached on
 *    disk by content, so an unchanged file is neither transformed nor is
 *    sucrase loaded; an edited file is transformed again on its next run, so
 *    nothing stale ever runs. V8's compiled code is cached too
 *    (v8-compile-cache).
 * 2. The TypeScript compiler. @pulumi/pulumi loads it (~0.4 s) for one use,
 *    serializing JavaScript functions (dynamic providers, callbacks), which
 *    this program never does; its other users already load it on first use.
 *    It is loaded on first use here too.
 * 3. Source maps. @pulumi/pulumi's program runner installs source-map-support,
 *    which parses the SDK's source maps (~0.2 s) whenever a stack is read, and
 *    the SDK reads one for every resource it registers. sucrase keeps every
 *    line where it was, so our own frames point at the right `.ts` lines
 *    without it; the SDK's frames point at its `.js`, which is what is on disk.
 */
"use strict";

// @ts-expect-error: v8-compile-cache has no types; it is required for its effect.
require("v8-compile-cache");

const crypto = require("crypto");
const fs = require("fs");
const Module = require("module");
const path = require("path");

const SUCRASE_OPTIONS = { transforms: /** @type {("imports" | "typescript")[]} */ (["imports", "typescript"]) };

/** Where transformed TypeScript is kept: the usual place for tools' caches, gone with node_modules. */
const cacheDir = path.join(path.dirname(path.dirname(require.resolve("sucrase/package.json"))), ".cache", "buildkit-stack-ts");

/**
 * What the transform of `source` depends on besides the source: sucrase's
 * version and options. Not the file's path: sucrase uses it only in error
 * messages, source maps and JSX display names, none of which these
 * transforms produce, so copies of the program (the tests', the bench's)
 * share one entry per distinct file.
 */
const transformId = `sucrase@${require("sucrase/package.json").version} ${JSON.stringify(SUCRASE_OPTIONS)}`;

/**
 * `source` (the TypeScript file `filename`) as JavaScript, from the cache when
 * the same bytes were transformed before.
 * @param {string} source
 * @param {string} filename
 * @returns {string}
 */
function transformTypeScript(source, filename) {
  const key = crypto.createHash("sha256").update(`${transformId}\0${source}`).digest("hex");
  const cached = path.join(cacheDir, `${key}.js`);
  try {
    return fs.readFileSync(cached, "utf8");
  } catch {
    // not transformed yet
  }
  const code = require("sucrase").transform(source, { ...SUCRASE_OPTIONS, filePath: filename }).code;
  try {
    // Written aside and renamed: another process starting at the same time reads all or nothing.
    fs.mkdirSync(cacheDir, { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(partial, code);
    fs.renameSync(partial, cached);
  } catch {
    // A read-only node_modules only costs the transform on the next run.
  }
  return code;
}

// What node's `require` does for a `.ts` file (as sucrase/register would do it, through the cache).
/**
 * @param {Module} module
 * @param {string} filename
 */
function loadTypeScript(module, filename) {
  // Module#_compile is node's own, what every require hook calls; @types/node leaves it out.
  const compilable = /** @type {{ _compile(code: string, filename: string): void }} */ (/** @type {unknown} */ (module));
  compilable._compile(transformTypeScript(fs.readFileSync(filename, "utf8"), filename), filename);
}
require.extensions[".ts"] = loadTypeScript;

/**
 * Puts `exports` in node's module cache as the module `id`, so that
 * `require(id)` returns it without loading the file.
 * @param {string} id
 * @param {unknown} exports
 */
function preset(id, exports) {
  const module = new Module(id);
  module.filename = id;
  module.loaded = true;
  module.exports = exports;
  require.cache[id] = module;
}

/**
 * The module `id` as a stand-in that loads it on first use (a property read,
 * `in`, or listing its keys).
 * @param {string} id
 */
function presetLazy(id) {
  /** @type {object | undefined} */
  let loaded;
  const load = () => {
    if (!loaded) {
      delete require.cache[id];
      loaded = /** @type {object} */ (require(id));
    }
    return loaded;
  };
  preset(
    id,
    new Proxy(
      {},
      {
        get: (_, key) => Reflect.get(load(), key),
        has: (_, key) => Reflect.has(load(), key),
        ownKeys: () => Reflect.ownKeys(load()),
        getOwnPropertyDescriptor: (_, key) => {
          const descriptor = Reflect.getOwnPropertyDescriptor(load(), key);
          // A proxy may not report a property its (empty) target lacks as non-configurable.
          return descriptor && { ...descriptor, configurable: true };
        },
      },
    ),
  );
}

const sdk = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
presetLazy(require.resolve("@pulumi/pulumi/typescript-shim"));
preset(require.resolve("source-map-support/register", { paths: [sdk] }), {});

module.exports = { transformTypeScript, cacheDir };
