// pulumi-resource-docker, bridged locally.
//
// Test-environment plumbing: the module proxy reachable here does not serve
// pulumi-docker's provider module, so this is our own thin bridge of the same
// upstream Terraform provider (kreuzwerker/terraform-provider-docker) through
// pulumi-terraform-bridge, with the resource tokens and field names that the
// @pulumi/docker SDK pinned in package.json sends. Only the resources, data
// sources and provider settings the project uses are mapped.
package main

import (
	"context"
	"runtime"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// version is stamped with -ldflags to the @pulumi/docker version it serves.
var version = "0.0.0-dev"

func resource(name string) *tfbridge.ResourceInfo {
	return &tfbridge.ResourceInfo{Tok: tfbridge.MakeResource("docker", "index", name)}
}

func providerInfo() tfbridge.ProviderInfo {
	container := resource("Container")
	// The container's name is fixed, so a replacement must delete first.
	container.DeleteBeforeReplace = true
	container.Fields = map[string]*tfbridge.SchemaInfo{
		"command":           {Name: "command"},
		"networks_advanced": {Name: "networksAdvanced"},
	}
	remoteImage := resource("RemoteImage")
	remoteImage.Fields = map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}

	return tfbridge.ProviderInfo{
		P:       shimv2.NewProvider(shim.NewProvider()),
		Name:    "docker",
		Version: version,
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {
				Default: &tfbridge.DefaultInfo{
					EnvVars: []string{"DOCKER_HOST"},
					ComputeDefault: func(context.Context, tfbridge.ComputeDefaultOptions) (interface{}, error) {
						if runtime.GOOS == "windows" {
							return "npipe:////./pipe/docker_engine", nil
						}
						return "unix:///var/run/docker.sock", nil
					},
				},
			},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": container,
			"docker_image":     remoteImage,
			"docker_network":   resource("Network"),
			"docker_volume":    resource("Volume"),
			"docker_tag":       resource("Tag"),
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			// What @pulumi/docker's getRegistryImage invokes: a tag's current digest in a
			// registry (buildkit:tagRegistry), so a new image behind the same tag shows in preview.
			"docker_registry_image": {Tok: tfbridge.MakeDataSource("docker", "index", "getRegistryImage")},
		},
	}
}

func main() {
	tfbridge.Main("docker", version, providerInfo(), nil)
}
