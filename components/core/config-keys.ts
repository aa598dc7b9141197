/**
 * How a `buildkit:*` key is read and how a refusal is worded, for every
 * target: each key has a schema and the form a person should write; a value
 * is refused with the full key, the value given (never a secret's) and that
 * form; every problem of a stack file is collected, and reported at once in a
 * {@link ConfigError}.
 */
import { z } from "zod";

import { parseSize, SIZE_FORM } from "./units";

export const CONFIG_NAMESPACE = "buildkit";

/**
 * Prefix of the labels the program puts on what it creates (managed-by,
 * container, production, rootless, allow-privileged). The policy pack judges
 * daemons by them, so user labels under it are refused: they would be
 * silently overridden, or worse, pass for the program's own.
 */
export const LABEL_PREFIX = "org.buildkit-stack";
/** The label naming the daemon's container: how the CLIs tell a container of ours from a hand-made one under its name. */
export const CONTAINER_LABEL = `${LABEL_PREFIX}.container`;

/** Raised when the configuration is invalid; `problems` holds one sentence each. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(
      `Invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** One known key: how to read it and the form a person should write. */
export interface KeySpec<T> {
  schema: z.ZodType<T>;
  form: string;
  /** Holds key material: never echoed, and refused unless stored as a Pulumi secret. */
  secret?: boolean;
}

/** The value type a key spec reads. */
export type KeyValue<S> = S extends KeySpec<infer T> ? T : never;

/** The full name of a key, as the user writes it: `buildkit:memory`. */
export const full = (key: string) => `${CONFIG_NAMESPACE}:${key}`;

/** A value as the user gave it, for a message. */
export const show = (value: unknown): string =>
  typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);

/** Marks a value as refused, with a reason beyond the form when there is one (shown in parentheses after it). */
export const refuse = (ctx: z.RefinementCtx, why = ""): never => {
  ctx.addIssue({ code: "custom", message: why || "refused", params: { why } });
  return z.NEVER;
};

/** The reason a schema gave with {@link refuse}, searched through union branches too. */
export function reasonOf(issues: readonly z.core.$ZodIssue[]): string | undefined {
  for (const issue of issues) {
    if (issue.code === "custom" && typeof issue.params?.why === "string" && issue.params.why) return issue.params.why;
    if (issue.code === "invalid_union") {
      const nested = reasonOf(issue.errors.flat());
      if (nested) return nested;
    }
  }
  return undefined;
}

/** JSON text as a value; undefined when it is not JSON (a schema then refuses it by its form). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const DECIMAL_INTEGER = /^(?:0|[1-9]\d*)$/;
export const DECIMAL_NUMBER = /^\d+(?:\.\d+)?$/;

export const bool: KeySpec<boolean> = {
  schema: z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]),
  form: "true or false",
};

export const size: KeySpec<number> = {
  schema: z.string().transform((v, ctx) => parseSize(v) ?? refuse(ctx)),
  form: SIZE_FORM,
};

/** Whole numbers in plain decimal: `0x10`, `1e3`, `+5`, `007` or ` 5` are typos, not numbers. */
export const wholeNumber = (form: string, min: number, max = Number.MAX_SAFE_INTEGER): KeySpec<number> => ({
  schema: z
    .union([z.number(), z.string().regex(DECIMAL_INTEGER).transform(Number)])
    .pipe(z.number().int().min(min).max(max)),
  form,
});

export const pem = (what: string): KeySpec<string> => ({
  schema: z.string().includes("-----BEGIN "),
  form: `a PEM-encoded ${what}, set with \`pulumi config set --secret\``,
  secret: true,
});

/** A list given natively or, as `pulumi config` stores it, as a JSON string; entries checked one by one. */
export const list = (entry: (value: string) => string | undefined, form: string): KeySpec<string[]> => {
  const entries = z.array(z.string()).transform((values, ctx) => {
    for (const value of values) {
      const why = entry(value);
      if (why !== undefined) return refuse(ctx, why);
    }
    return values;
  });
  return {
    schema: z.union([
      entries,
      z.string().transform((v, ctx) => {
        const result = entries.safeParse(parseJson(v));
        return result.success ? result.data : refuse(ctx, reasonOf(result.error.issues));
      }),
    ]),
    form,
  };
};

/** A map of names to strings, given natively or as a JSON string; `check` says why a name is refused. */
export const stringMap = (check: (name: string) => string | undefined, form: string): KeySpec<Record<string, string>> => ({
  schema: z
    .union([z.record(z.string(), z.string()), z.string().transform((v, ctx) => parseJson(v) ?? refuse(ctx)).pipe(z.record(z.string(), z.string()))])
    .transform((map, ctx) => {
      for (const name of Object.keys(map)) {
        const why = check(name);
        if (why !== undefined) return refuse(ctx, why);
      }
      return map;
    }),
  form,
});

/** A table of key specs, by key name. */
export type KeyTable = Record<string, KeySpec<unknown>>;

/** The values read for a table's keys: present when given and valid. */
export type KeyValues<T extends KeyTable> = { [K in keyof T]?: KeyValue<T[K]> };

/** What reading a stack's raw config against a key table found. */
export interface KeyReading<T extends KeyTable> {
  /** Valid values of the keys given. */
  values: KeyValues<T>;
  /** One sentence per key refused or unknown, in the order of the stack file. */
  problems: string[];
  /** The raw value of a key, with or without its namespace. */
  rawOf(key: keyof T & string): unknown;
  /** The key was written in the stack file. */
  given(key: keyof T & string): boolean;
  /** The key was written but refused: already reported, and its default must not be described as what was set. */
  refused(key: keyof T & string): boolean;
}

/**
 * Reads raw config (as `pulumi.runtime.allConfig()` holds it: keys with or
 * without the `buildkit:` prefix, values as strings or native) against `keys`.
 * Keys of other namespaces are ignored; `skip` names keys of ours read
 * elsewhere (a fleet's host list); `elsewhere` says, for a key another target
 * reads, why it does not apply here.
 */
export function readKeys<T extends KeyTable>(
  raw: Record<string, unknown>,
  keys: T,
  options: {
    skip?: string[];
    elsewhere?: (key: string) => string | undefined;
    /**
     * Whether a key (full name) is stored as a Pulumi secret. Given (the
     * program passes what the Pulumi runtime knows), key material stored in
     * plain text is refused: it would sit in the stack file and in git.
     */
    isSecret?: (key: string) => boolean;
  } = {},
): KeyReading<T> {
  const names = Object.keys(keys);
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [rawKey, value] of Object.entries(raw)) {
    const [namespace, key] = rawKey.includes(":") ? rawKey.split(":", 2) : [CONFIG_NAMESPACE, rawKey];
    if (namespace !== CONFIG_NAMESPACE || options.skip?.includes(key)) continue;
    // Own keys only: `constructor`, `toString`... are typos too, not settings.
    // (Object.hasOwn is ES2022; the policy pack, which imports this module, compiles for ES2021.)
    const spec = Object.prototype.hasOwnProperty.call(keys, key) ? keys[key] : undefined;
    if (!spec) {
      problems.push(options.elsewhere?.(key) ?? `${full(key)} is not a setting this program reads; known settings: ${names.join(", ")}`);
      continue;
    }
    if (spec.secret && options.isSecret && !options.isSecret(full(key))) {
      problems.push(
        `${full(key)} is key material stored in plain text in the stack file (and so in git); ` +
          `store it as a secret: pulumi config set --secret ${full(key)} < file.pem, then check the plain value is gone from Pulumi.<stack>.yaml`,
      );
      continue;
    }
    const result = spec.schema.safeParse(value);
    if (result.success) {
      values[key] = result.data;
    } else {
      const why = reasonOf(result.error.issues);
      problems.push(`${full(key)} is ${spec.secret ? "[secret]" : show(value)}; expected ${spec.form}${why ? ` (${why})` : ""}`);
    }
  }
  const rawOf = (key: string) => raw[full(key)] ?? raw[key];
  const given = (key: string) => rawOf(key) !== undefined;
  return { values: values as KeyValues<T>, problems, rawOf, given, refused: (key) => given(key) && values[key] === undefined };
}
