package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/agent"
)

// Instance is a running gVisor sandbox.
type Instance struct {
	rt     *Runtime
	id     string
	bundle string
	env    []string // Spec.Environ

	agent *agent.Client
	pipes []*os.File // our ends of the agent's stdio

	// runsc's host processes for this sandbox, reaped by the runtime;
	// nil if not known (Delete then leaves the waiting to runsc).
	sandbox, gofer *hostProc

	gone atomic.Bool // Delete has begun
}

var _ sandbox.Instance = (*Instance)(nil)

// ID implements sandbox.Instance.
func (in *Instance) ID() string { return in.id }

// Delete implements sandbox.Instance. It kills every process in the sandbox
// (running Execs return an error), waits until runsc's processes are gone
// and removes the bundle with the writable layer.
func (in *Instance) Delete(ctx context.Context) error {
	if in.gone.Swap(true) {
		return nil
	}
	// Kill and reap runsc's processes before runsc delete, which would
	// kill them too but then poll every 100 ms until they are reaped.
	// (It is also what it would do: SIGKILL, no graceful stop.)
	procs := slices.DeleteFunc([]*hostProc{in.sandbox, in.gofer}, func(p *hostProc) bool { return p == nil })
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		if err := p.wait(ctx); err != nil {
			break // runsc delete below still kills and waits
		}
	}
	err := in.rt.remove(ctx, in.id)
	for _, f := range in.pipes {
		f.Close()
	}
	// Forget it even if runsc failed: Cleanup then retries.
	in.rt.forget(in.id)
	if err != nil {
		return err
	}
	in.rt.log.Info("sandbox deleted", logKeySandbox, in.id)
	return nil
}

// Exec implements sandbox.Instance through the sandbox's agent: no host
// process per command, and the command's environment never appears on a
// host command line or in a file.
func (in *Instance) Exec(ctx context.Context, spec sandbox.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	if in.gone.Load() {
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	}
	spec = spec.WithDefaults(in.env)
	as := agent.Spec{
		Args: spec.Args, Env: spec.Env, Dir: spec.Dir,
		TTY: spec.TTY, Rows: spec.Rows, Cols: spec.Cols,
		Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr,
		Resize: spec.Resize,
	}
	code, err := in.agent.Exec(ctx, as)
	switch {
	case err == nil:
		return code, nil
	case errors.Is(err, agent.ErrGone) && in.gone.Load():
		return -1, fmt.Errorf("exec in %q: %w", in.id, sandbox.ErrNotFound)
	case errors.Is(err, agent.ErrGone):
		// Not deleted, yet the agent is gone: the sandbox died.
		return -1, fmt.Errorf("exec in %q: %w: %w", in.id, sandbox.ErrNotFound, err)
	}
	return -1, fmt.Errorf("exec in %q: %w", in.id, err)
}

// runscError returns the message of the error runsc wrote as JSON on its
// log fd, or "".
func runscError(log []byte) string {
	var last string
	for _, line := range bytes.Split(log, []byte("\n")) {
		var e struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
		}
		if json.Unmarshal(line, &e) == nil && e.Level == "error" && e.Msg != "" {
			last = e.Msg
		}
	}
	return last
}
