// Run for the v3.68 Node.js language host, with the project's runtime options.
//
// The v3.68 host reads Pulumi.yaml's runtime options (typescript, nodeargs,
// tsconfig) from its command line. Pulumi 3.276 no longer puts them there: it
// starts the host with only the engine's address and sends the options with
// each request, in RunRequest.info.options, a field newer than this host's
// protobuf. Without this file the host ran every program with its flag
// defaults: on ts-node, without the project's nodeargs, whatever Pulumi.yaml
// said. So Run reads the options from the request's unknown fields and runs
// the host's own Run (renamed runWithHostOptions by pulumi.sh) with them.
//
// It also resolves @pulumi/pulumi/cmd/run itself where node_modules is laid
// out plainly, instead of starting node once per run to ask require.resolve
// (~0.2 s of every preview and up); anything else is still left to node.
//
// pulumi.sh copies this file next to the host's own sources and renames the
// two functions it replaces.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Field numbers in Pulumi 3.276's language.proto: RunRequest.info, ProgramInfo.options.
const (
	runRequestInfoField     = 14
	programInfoOptionsField = 4
)

// runtimeOptions returns Pulumi.yaml's runtime options as the CLI sent them with the request
// (nil from a CLI that sends none: the host's flags then stand).
func runtimeOptions(req proto.Message) (map[string]interface{}, error) {
	info, ok := bytesFields(req.ProtoReflect().GetUnknown())[runRequestInfoField]
	if !ok {
		return nil, nil
	}
	raw, ok := bytesFields(info)[programInfoOptionsField]
	if !ok {
		return nil, nil
	}
	options := &structpb.Struct{}
	if err := proto.Unmarshal(raw, options); err != nil {
		return nil, fmt.Errorf("reading the runtime options sent with the request: %w", err)
	}
	return options.AsMap(), nil
}

// withOptions is the host as Pulumi.yaml's runtime options configure it.
func (host *nodeLanguageHost) withOptions(options map[string]interface{}) (*nodeLanguageHost, error) {
	configured := *host
	for key, value := range options {
		var ok bool
		switch key {
		case "typescript":
			configured.typescript, ok = value.(bool)
		case "nodeargs":
			configured.nodeargs, ok = value.(string)
		case "tsconfig":
			configured.tsconfigpath, ok = value.(string)
		default:
			continue // options of newer hosts (packagemanager, ...) this one has no use for
		}
		if !ok {
			return nil, fmt.Errorf("Pulumi.yaml runtime option %q is %v (%T); expected a %s",
				key, value, value, map[bool]string{true: "boolean", false: "string"}[key == "typescript"])
		}
	}
	return &configured, nil
}

func (host *nodeLanguageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	options, err := runtimeOptions(req)
	if err != nil {
		return nil, err
	}
	configured, err := host.withOptions(options)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return configured.runWithHostOptions(ctx, req)
}

// locateModule resolves mod from the working directory (the program's) as node would.
func locateModule(ctx context.Context, mod string, nodeBin string) (string, error) {
	if dir, err := os.Getwd(); err == nil {
		if path, ok := resolvePlainModule(dir, mod); ok {
			return path, nil
		}
	}
	return locateModuleWithNode(ctx, mod, nodeBin)
}

// resolvePlainModule finds PACKAGE/SUBPATH from dir the way node's require.resolve does when
// the nearest node_modules/PACKAGE has no "exports" map and SUBPATH is a directory whose
// entry is index.js: the common layout. It answers ok=false for anything else (relative or
// absolute paths, export maps, SUBPATH.js files, directories with their own package.json),
// and the caller asks node.
func resolvePlainModule(dir, mod string) (string, bool) {
	parts := strings.Split(mod, "/")
	if strings.HasPrefix(mod, ".") || strings.HasPrefix(mod, "/") || len(parts) < 2 {
		return "", false
	}
	nameParts := 1
	if strings.HasPrefix(mod, "@") {
		nameParts = 2
		if len(parts) < 3 {
			return "", false
		}
	}
	name, subpath := filepath.Join(parts[:nameParts]...), filepath.Join(parts[nameParts:]...)
	for current := dir; ; current = filepath.Dir(current) {
		pkg := filepath.Join(current, "node_modules", name)
		manifest, err := os.ReadFile(filepath.Join(pkg, "package.json"))
		if err == nil {
			var fields map[string]json.RawMessage
			if json.Unmarshal(manifest, &fields) != nil || fields["exports"] != nil {
				return "", false
			}
			target := filepath.Join(pkg, subpath)
			for _, shadow := range []string{target, target + ".js", filepath.Join(target, "package.json")} {
				if _, err := os.Stat(shadow); err == nil && (shadow != target || !isDir(target)) {
					return "", false
				}
			}
			index, err := filepath.EvalSymlinks(filepath.Join(target, "index.js"))
			return index, err == nil
		}
		if current == filepath.Dir(current) {
			return "", false
		}
	}
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
