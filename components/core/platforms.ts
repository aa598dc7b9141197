/**
 * How a worker platform is spelt: the architectures and variants a Linux
 * BuildKit worker can advertise, as Go, OCI and containerd spell them.
 */

/**
 * Architectures (GOARCH, as BuildKit and OCI image indexes spell them) a Linux
 * worker can advertise. A misspelt one ("x86_64", "aarch64") would be
 * advertised as written and match no build's --platform.
 */
const PLATFORM_ARCHITECTURES = ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64"];
const PLATFORM_PATTERN = /^([a-z]+)\/([a-z0-9]+)(?:\/(v\d+(?:\.\d+)?))?$/;

/**
 * The variants each architecture has, as containerd's platform normalisation
 * (which BuildKit matches --platform with) and Go's GOAMD64/GOARM spell them:
 * amd64 microarchitecture levels v1-v4, 32-bit ARM v5-v8, arm64 v8 and v9 with
 * their minor revisions (v8.0-v8.9, v9.0-v9.5). Other architectures have
 * none. A variant outside these ("linux/amd64/v9") would be advertised as
 * written and match no build, nor any image in an index.
 */
export const PLATFORM_VARIANTS: Record<string, string[]> = {
  amd64: ["v1", "v2", "v3", "v4"],
  arm: ["v5", "v6", "v7", "v8"],
  arm64: ["v8", ...Array.from({ length: 10 }, (_, i) => `v8.${i}`), "v9", ...Array.from({ length: 6 }, (_, i) => `v9.${i}`)],
};

/** Why a worker platform entry is refused, or undefined. */
export function platformProblem(entry: string): string | undefined {
  const match = PLATFORM_PATTERN.exec(entry);
  if (!match) return `"${entry}" is not os/arch or os/arch/variant in lower case`;
  const [, os, arch, variant] = match;
  // buildkitd's OCI worker runs Linux containers; advertising another OS only makes builds for it fail later.
  if (os !== "linux") return `"${entry}": the OCI worker runs linux containers only, not ${os}`;
  if (!PLATFORM_ARCHITECTURES.includes(arch)) return `"${arch}" is not an architecture as Go and OCI spell it (${PLATFORM_ARCHITECTURES.join(", ")})`;
  if (variant !== undefined) {
    const known = PLATFORM_VARIANTS[arch] ?? [];
    if (known.length === 0) return `"${entry}": ${arch} has no variants; write ${os}/${arch}`;
    if (!known.includes(variant)) return `"${entry}": ${arch} has no variant ${variant} (its variants: ${compactVariants(known)})`;
  }
  return undefined;
}

/** v8, v8.0…v8.9 → "v8, v8.0-v8.9": the list as a person reads it. */
function compactVariants(variants: string[]): string {
  const majors = variants.filter((v) => !v.includes("."));
  return majors
    .map((major) => {
      const minors = variants.filter((v) => v.startsWith(`${major}.`));
      return minors.length > 0 ? `${major}, ${minors[0]}-${minors[minors.length - 1]}` : major;
    })
    .join(", ");
}
