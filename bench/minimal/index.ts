// `docker run -d --name NAME --privileged -v VOLUME:/var/lib/buildkit
// --memory 1g --cpus 1 IMAGE` as a Pulumi program, nothing more.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config();
const image = new docker.RemoteImage("image", { name: config.require("image"), keepLocally: true });
new docker.Container("daemon", {
  name: config.require("containerName"),
  image: image.imageId,
  privileged: true,
  memory: 1024,
  memorySwap: 1024,
  cpus: "1.0",
  // The volume is created by the engine on first use, as `docker run -v` does.
  volumes: [{ volumeName: config.require("volumeName"), containerPath: "/var/lib/buildkit" }],
});
