// pulumi-resource-command, local commands only.
//
// Test-environment plumbing: the module proxy reachable here does not serve
// pulumi-command's provider module, so this is a small provider of our own
// that implements the part of its schema the project uses, command:local:Command,
// with the same semantics: `create` runs on create (and on update when no
// `update` is given), `delete` on delete, `triggers` force a replacement, and
// stdout/stderr become outputs with their trailing newline trimmed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is stamped with -ldflags to the @pulumi/command version it serves.
var version = "0.0.0-dev"

const localCommand = "command:local:Command"

// inputKeys are the inputs whose change is an update; triggers replace.
var inputKeys = []resource.PropertyKey{
	"create", "update", "delete", "dir", "environment", "interpreter", "stdin",
	"addPreviousOutputInEnv", "logging", "triggers",
}

type commandProvider struct {
	plugin.UnimplementedProvider
}

func (p *commandProvider) GetPluginInfo(context.Context) (plugin.PluginInfo, error) {
	v := semver.MustParse(version)
	return plugin.PluginInfo{Version: &v}, nil
}

func (p *commandProvider) Handshake(context.Context, plugin.ProviderHandshakeRequest) (*plugin.ProviderHandshakeResponse, error) {
	return &plugin.ProviderHandshakeResponse{}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req plugin.CheckConfigRequest) (plugin.CheckConfigResponse, error) {
	return plugin.CheckConfigResponse{Properties: req.News}, nil
}

func (p *commandProvider) DiffConfig(context.Context, plugin.DiffConfigRequest) (plugin.DiffConfigResponse, error) {
	return plugin.DiffResult{Changes: plugin.DiffNone}, nil
}

func (p *commandProvider) Configure(context.Context, plugin.ConfigureRequest) (plugin.ConfigureResponse, error) {
	return plugin.ConfigureResponse{}, nil
}

func (p *commandProvider) SignalCancellation(context.Context) error { return nil }

func (p *commandProvider) Close() error { return nil }

func (p *commandProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	if err := requireType(req.Type.String()); err != nil {
		return plugin.CheckResponse{}, err
	}
	if _, ok := req.News["create"]; !ok {
		return plugin.CheckResponse{Failures: []plugin.CheckFailure{{Property: "create", Reason: "create is required by this provider"}}}, nil
	}
	return plugin.CheckResponse{Properties: req.News}, nil
}

func (p *commandProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	diff := map[string]plugin.PropertyDiff{}
	var changed, replace []resource.PropertyKey
	for _, key := range inputKeys {
		oldValue, hadOld := req.OldInputs[key]
		newValue, hasNew := req.NewInputs[key]
		if !hadOld && !hasNew {
			continue
		}
		if hadOld && hasNew && !newValue.ContainsUnknowns() && oldValue.DeepEquals(newValue) {
			continue
		}
		kind := plugin.DiffUpdate
		switch {
		case !hadOld:
			kind = plugin.DiffAdd
		case !hasNew:
			kind = plugin.DiffDelete
		}
		if key == "triggers" {
			kind += plugin.DiffAddReplace - plugin.DiffAdd
			replace = append(replace, key)
		}
		changed = append(changed, key)
		diff[string(key)] = plugin.PropertyDiff{Kind: kind, InputDiff: true}
	}
	if len(changed) == 0 {
		return plugin.DiffResult{Changes: plugin.DiffNone}, nil
	}
	return plugin.DiffResult{
		Changes: plugin.DiffSome, ChangedKeys: changed, ReplaceKeys: replace,
		DetailedDiff: diff, DeleteBeforeReplace: false,
	}, nil
}

func (p *commandProvider) Create(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	if err := requireType(req.Type.String()); err != nil {
		return plugin.CreateResponse{}, err
	}
	outputs := req.Properties.Copy()
	if req.Preview {
		outputs["stdout"] = resource.MakeComputed(resource.NewProperty(""))
		outputs["stderr"] = resource.MakeComputed(resource.NewProperty(""))
		return plugin.CreateResponse{Properties: outputs}, nil
	}
	stdout, stderr, err := run(ctx, req.Properties, text(req.Properties["create"]), nil)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	outputs["stdout"], outputs["stderr"] = resource.NewProperty(stdout), resource.NewProperty(stderr)
	return plugin.CreateResponse{ID: resource.ID(randomID()), Properties: outputs}, nil
}

func (p *commandProvider) Update(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	outputs := req.NewInputs.Copy()
	if req.Preview {
		outputs["stdout"] = resource.MakeComputed(resource.NewProperty(""))
		outputs["stderr"] = resource.MakeComputed(resource.NewProperty(""))
		return plugin.UpdateResponse{Properties: outputs}, nil
	}
	script := text(req.NewInputs["update"])
	if script == "" {
		script = text(req.NewInputs["create"])
	}
	stdout, stderr, err := run(ctx, req.NewInputs, script, req.OldOutputs)
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	outputs["stdout"], outputs["stderr"] = resource.NewProperty(stdout), resource.NewProperty(stderr)
	return plugin.UpdateResponse{Properties: outputs}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	if script := text(req.Outputs["delete"]); script != "" {
		if _, _, err := run(ctx, req.Outputs, script, req.Outputs); err != nil {
			return plugin.DeleteResponse{}, err
		}
	}
	return plugin.DeleteResponse{}, nil
}

// Read keeps the recorded state: a local command has nothing remote to re-read.
func (p *commandProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	return plugin.ReadResponse{ReadResult: plugin.ReadResult{
		ID: req.ID, Inputs: req.Inputs, Outputs: req.State,
	}, Status: resource.StatusOK}, nil
}

func requireType(token string) error {
	if token != localCommand {
		return fmt.Errorf("this command provider implements only %s, not %s", localCommand, token)
	}
	return nil
}

func text(v resource.PropertyValue) string {
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

// run executes script with the resource's interpreter, directory, stdin and
// environment; previous outputs are exposed as PULUMI_COMMAND_STDOUT/STDERR.
func run(ctx context.Context, inputs resource.PropertyMap, script string, previous resource.PropertyMap) (string, string, error) {
	interpreter := []string{"/bin/sh", "-c"}
	if v := inputs["interpreter"]; v.IsArray() && len(v.ArrayValue()) > 0 {
		interpreter = nil
		for _, part := range v.ArrayValue() {
			interpreter = append(interpreter, text(part))
		}
	}
	cmd := exec.CommandContext(ctx, interpreter[0], append(interpreter[1:], script)...)
	cmd.Dir = text(inputs["dir"])
	cmd.Env = os.Environ()
	if env := inputs["environment"]; env.IsObject() {
		keys := env.ObjectValue().StableKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		for _, key := range keys {
			cmd.Env = append(cmd.Env, string(key)+"="+text(env.ObjectValue()[key]))
		}
	}
	addPrevious := true
	if v := inputs["addPreviousOutputInEnv"]; v.IsBool() {
		addPrevious = v.BoolValue()
	}
	if previous != nil && addPrevious {
		cmd.Env = append(cmd.Env,
			"PULUMI_COMMAND_STDOUT="+text(previous["stdout"]),
			"PULUMI_COMMAND_STDERR="+text(previous["stderr"]))
	}
	if stdin := text(inputs["stdin"]); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	logging.V(5).Infof("command: running %q", script)
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("%w: running %q:\nStdout:\n%s\nStderr:\n%s", err, script, stdout.String(), stderr.String())
	}
	return strings.TrimSuffix(stdout.String(), "\n"), strings.TrimSuffix(stderr.String(), "\n"), nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func main() {
	err := provider.Main("command", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return plugin.NewProviderServer(&commandProvider{}), nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
