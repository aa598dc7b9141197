/**
 * Sizes and durations as people write them in stack config, resolved to bytes
 * and seconds: the one place the units live (memory, shm, the GC limits, a
 * PVC's size, the stop grace period).
 */

export const KIB = 1024;
export const MIB = 1024 ** 2;
export const GIB = 1024 ** 3;

export const SIZE_FORM = "a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples; at most 8191t)";
// A number, then b, or k/m/g/t optionally followed by b or ib: "20ib" is not a size.
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i;
/** Powers of 1024 by unit letter, as docker's units.RAMInBytes reads them. */
export const UNIT_POWER: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4 };

/**
 * Parses a docker size (`512m`, `4g`, `1.5GiB`, `1048576`) into whole bytes.
 * Undefined for anything else, for zero, and past 2^53 bytes (8 PiB), where
 * neither JavaScript nor Pulumi's numbers hold whole bytes any more (and
 * `9999999t` would overflow docker's int64).
 */
export function parseSize(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * 1024 ** UNIT_POWER[(match[2] ?? "").toLowerCase()]);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size the way a person would write it back: `2g`, `512m`, else bytes. */
export function sizeName(bytes: number): string {
  return bytes % GIB === 0 ? `${bytes / GIB}g` : bytes % MIB === 0 ? `${bytes / MIB}m` : `${bytes} bytes`;
}

const DURATION_PATTERN = /^(0|[1-9]\d*)([smh]?)$/;
const DURATION_UNIT_SECONDS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600 };

/** Parses a duration (`90`, `90s`, `10m`, `1h`) into whole seconds. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  return match ? Number(match[1]) * DURATION_UNIT_SECONDS[match[2]] : undefined;
}
