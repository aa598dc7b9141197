/** How a worker platform is spelt: what containerd and Go accept, and the reason for anything else. */
import { platformProblem } from "../../../components/core/platforms";

describe("platformProblem", () => {
  it.each(["linux/amd64", "linux/amd64/v3", "linux/arm/v7", "linux/arm64/v8.2", "linux/arm64/v9", "linux/riscv64"])("accepts %s", (platform) => {
    expect(platformProblem(platform)).toBeUndefined();
  });

  it.each([
    ["linux/amd64/v9", '"linux/amd64/v9": amd64 has no variant v9 (its variants: v1, v2, v3, v4)'],
    ["linux/riscv64/v1", '"linux/riscv64/v1": riscv64 has no variants; write linux/riscv64'],
    ["linux/aarch32", '"aarch32" is not an architecture as Go and OCI spell it'],
    ["windows/amd64", '"windows/amd64": the OCI worker runs linux containers only, not windows'],
    ["Linux/AMD64", '"Linux/AMD64" is not os/arch or os/arch/variant in lower case'],
  ])("refuses %s", (platform, reason) => {
    expect(platformProblem(platform)).toContain(reason);
  });
});
