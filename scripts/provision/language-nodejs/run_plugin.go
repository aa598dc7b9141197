// RunPlugin for the v3.68 Node.js language host, which only stubs it ("not
// supported"). Pulumi 3.276 starts a Node.js policy pack (and other plugins
// written in Node.js) through this RPC: it names the plugin's directory in
// RunPluginRequest.info and its kind in RunPluginRequest.kind, fields newer
// than this host's protobuf, so they are read from the message's unknown
// fields. The plugin runs as the official host runs it: node on the
// project's own @pulumi/pulumi entry point (cmd/run-policy-pack compiles the
// TypeScript pack with ts-node), with the engine's arguments, then the pack's
// directory.
//
// pulumi.sh copies this file next to the host's own sources and deletes the stub.
package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Field numbers of pulumirpc.RunPluginRequest and ProgramInfo in Pulumi 3.276's language.proto.
const (
	runPluginInfoField         = 5
	runPluginKindField         = 6
	programInfoProgramDirField = 2
)

// bytesFields returns the length-delimited fields of a raw message by number (last one wins).
func bytesFields(raw []byte) map[protowire.Number][]byte {
	fields := map[protowire.Number][]byte{}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(raw)
			if m < 0 {
				break
			}
			fields[num] = v
			raw = raw[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			break
		}
		raw = raw[m:]
	}
	return fields
}

func (host *nodeLanguageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	fields := bytesFields(req.ProtoReflect().GetUnknown())
	programDir := string(bytesFields(fields[runPluginInfoField])[programInfoProgramDirField])
	if programDir == "" {
		programDir = req.GetProgram()
	}
	if programDir == "" {
		return errors.New("RunPlugin: the request names no plugin directory")
	}
	entry := "@pulumi/pulumi/cmd/run-plugin"
	if string(fields[runPluginKindField]) == "analyzer" {
		entry = "@pulumi/pulumi/cmd/run-policy-pack"
	}

	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("RunPlugin: node is not on PATH: %w", err)
	}
	// Resolved from the plugin's directory: its own (or an enclosing) node_modules.
	runPath, ok := resolvePlainModule(programDir, entry)
	if !ok {
		resolve := exec.Command(nodeBin, "-p", fmt.Sprintf("require.resolve(%q)", entry))
		resolve.Dir = programDir
		resolve.Env = req.GetEnv()
		out, err := resolve.Output()
		if err != nil {
			return fmt.Errorf("RunPlugin: cannot find module '%s' from %s; run npm install there: %w", entry, programDir, err)
		}
		runPath = strings.TrimSpace(string(out))
	}

	// exec copies stdout and stderr on two goroutines; a gRPC stream takes one Send at a time.
	var sending sync.Mutex
	send := func(response *pulumirpc.RunPluginResponse) error {
		sending.Lock()
		defer sending.Unlock()
		return server.Send(response)
	}
	stdout := writerFunc(func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: append([]byte(nil), b...)}})
	})
	stderr := writerFunc(func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: append([]byte(nil), b...)}})
	})

	args := append([]string{runPath}, req.GetArgs()...)
	args = append(args, programDir)
	cmd := exec.Command(nodeBin, args...)
	cmd.Dir = req.GetPwd()
	if string(fields[runPluginKindField]) == "analyzer" {
		// A pack runs in its own directory: @pulumi/policy reads its version from ./package.json,
		// and ts-node looks for ./tsconfig.json.
		cmd.Dir = programDir
	}
	cmd.Env = req.GetEnv()
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitErr.ExitCode())}})
		}
		return err
	}
	return nil
}

type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
