/**
 * The one image-reference grammar (components/core/image-reference.ts): what
 * docker reads, what "pinned" means, which tags are rootless, and where a tag
 * is resolved. Config validation, the tag registry, the rootless rule and the
 * policy pack all go through it.
 */
import {
  IMAGE_NAME_MAX,
  isBuildkitRepository,
  isPinned,
  isRootlessTag,
  parseImageReference,
  registryOf,
  tagRegistryFor,
} from "../../../components/core/image-reference";

const DIGEST = "sha256:" + "a".repeat(64);

describe("reading a reference as docker does", () => {
  it.each([
    ["moby/buildkit:v0.32.2", { path: "moby/buildkit", tag: "v0.32.2" }],
    ["moby/buildkit", { path: "moby/buildkit" }],
    [`moby/buildkit@${DIGEST}`, { path: "moby/buildkit", digest: DIGEST }],
    [`moby/buildkit:latest@${DIGEST}`, { path: "moby/buildkit", tag: "latest", digest: DIGEST }],
    ["localhost:5000/moby/buildkit:v1", { registry: "localhost:5000", path: "moby/buildkit", tag: "v1" }],
    ["registry.example.com/team/buildkit", { registry: "registry.example.com", path: "team/buildkit" }],
    ["docker.io/moby/buildkit:v0.32.2", { path: "moby/buildkit", tag: "v0.32.2" }],
    ["index.docker.io/library/busybox", { path: "library/busybox" }],
    ["myhost:5000/buildkit", { registry: "myhost:5000", path: "buildkit" }],
  ])("%s", (text, expected) => {
    expect(parseImageReference(text)).toEqual({ reference: { registry: undefined, tag: undefined, digest: undefined, ...expected } });
  });

  it.each([
    ["Moby/buildkit:v1", 'docker reads a first segment with capitals, "Moby", as a registry host; repository names are lower-case'],
    ["localhost:70000/buildkit", "registry port 70000 is not from 1 to 65535"],
    [`registry.example.com/${"a".repeat(IMAGE_NAME_MAX)}`, `longer than docker's ${IMAGE_NAME_MAX} characters`],
    ["moby/buildkit:", ""],
    ["moby//buildkit", ""],
    ["moby/buildkit@sha256:short", ""],
    ["", ""],
  ])("refuses %j: %s", (text, why) => {
    expect(parseImageReference(text)).toEqual({ why });
  });
});

describe("pinned images", () => {
  it.each([
    ["moby/buildkit:v0.32.2", true],
    [`moby/buildkit@${DIGEST}`, true],
    [`moby/buildkit:latest@${DIGEST}`, true],
    ["localhost:5000/moby/buildkit:v1", true],
    ["registry.example.com/moby/buildkit:v0.32.2-rootless", true],
    ["moby/buildkit:0.32", true],
    ["moby/buildkit:1.2.3-rc1", true],
    ["registry.example.com:443/team/buildkit:2025-01", true],
    ["moby/buildkit:latest", false],
    ["moby/buildkit", false],
    ["localhost:5000/moby/buildkit", false],
    ["localhost:5000/moby/buildkit:latest", false],
    // Tags that move by design: branches, channels, the bare rootless tag.
    ["moby/buildkit:master", false],
    ["moby/buildkit:nightly", false],
    ["moby/buildkit:buildx-stable-1", false],
    ["moby/buildkit:rootless", false],
    ["moby/buildkit:master-rootless", false],
    ["not a reference", false],
  ])("%s is pinned: %s", (image, pinned) => {
    expect(isPinned(image)).toBe(pinned);
  });
});

describe("BuildKit's own tags", () => {
  it.each([
    ["moby/buildkit:v0.32.2", true],
    ["docker.io/moby/buildkit", true],
    ["library/moby/buildkit:v1", true],
    ["registry.example.com/moby/buildkit:v1", false],
    ["team/buildkit:v1", false],
  ])("%s is moby/buildkit on Docker Hub: %s", (image, expected) => {
    expect(isBuildkitRepository(image)).toBe(expected);
  });

  it.each([
    ["moby/buildkit:v0.32.2-rootless", true],
    ["moby/buildkit:rootless", true],
    [`moby/buildkit:master-rootless@${DIGEST}`, true],
    ["moby/buildkit:v0.32.2", false],
    ["moby/buildkit", false],
    ["moby/buildkit:notrootless", false],
  ])("%s has a rootless tag: %s", (image, expected) => {
    expect(isRootlessTag(image)).toBe(expected);
  });
});

describe("where a tag is resolved", () => {
  it("asks a plain-HTTP mirror for a Docker Hub image, which then runs as repository@digest", () => {
    expect(tagRegistryFor("moby/buildkit:v0.32.2", "http://127.0.0.1:5000")).toEqual({
      host: "127.0.0.1:5000",
      plainHttp: true,
      reference: "127.0.0.1:5000/moby/buildkit:v0.32.2",
      repository: "moby/buildkit",
    });
  });

  it("adds library/ to official images and latest to untagged ones", () => {
    expect(tagRegistryFor("busybox", "http://127.0.0.1:5000").reference).toBe("127.0.0.1:5000/library/busybox:latest");
  });

  it.each(["docker.io", "index.docker.io", "registry-1.docker.io"])("asks Docker Hub's API host when Docker Hub is named %s", (given) => {
    expect(tagRegistryFor("moby/buildkit:v1", given)).toMatchObject({ host: "registry-1.docker.io", plainHttp: false });
  });

  it("keeps an image's own registry in the repository it runs", () => {
    expect(tagRegistryFor("registry.example.com:5000/team/buildkit:v1", "registry.example.com:5000")).toMatchObject({
      reference: "registry.example.com:5000/team/buildkit:v1",
      repository: "registry.example.com:5000/team/buildkit",
    });
    expect(registryOf("registry.example.com:5000/team/buildkit:v1")).toBe("registry.example.com:5000");
    expect(registryOf("docker.io/moby/buildkit")).toBeUndefined();
  });
});
