package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/store"
)

// fakeRunner runs "sandboxes" in memory: Exec writes its args to stdout,
// "err" to stderr, and exits 7.
type fakeRunner struct {
	mu      sync.Mutex
	running map[string]bool
	stopped []string
	env     []string // of the last Exec
	stdin   string
}

func (f *fakeRunner) Start(ctx context.Context, sb *store.Sandbox) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running == nil {
		f.running = map[string]bool{}
	}
	f.running[sb.ID] = true
	return nil
}

func (f *fakeRunner) Exec(ctx context.Context, id string, spec sandbox.ExecSpec) (int, error) {
	if !f.Running(id) {
		return 0, ErrNotRunning
	}
	in, _ := io.ReadAll(spec.Stdin)
	f.mu.Lock()
	f.env, f.stdin = slices.Clone(spec.Env), string(in)
	f.mu.Unlock()
	for _, a := range spec.Args {
		spec.Stdout.Write([]byte(a + "\n"))
	}
	spec.Stderr.Write([]byte("err"))
	return 7, nil
}

func (f *fakeRunner) Stop(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, id)
	f.stopped = append(f.stopped, id)
	return nil
}

func (f *fakeRunner) Running(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[id]
}

func TestExec(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "records-only"}); err != nil {
		t.Fatal(err)
	}
	// Without a runner, a sandbox is a record only: exec is refused.
	_, err := env.client.Exec(ctx, "records-only", client.ExecRequest{Args: []string{"true"}}, nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != CodeNotRunning {
		t.Fatalf("Exec without a runtime = %v, want 409 %s", err, CodeNotRunning)
	}

	fr := &fakeRunner{}
	env.server.Sandboxes = fr
	if _, err := env.client.CreateSecret(ctx, client.SecretCreate{Name: "gh", Provider: "github", Value: "ghp_" + "0123456789abcdefghijABCDEFGHIJ0aBcDe"}); err != nil {
		t.Fatal(err)
	}
	sb, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "sb", Secrets: map[string]string{"GITHUB_TOKEN": "gh"}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != stateRunning {
		t.Errorf("CreateSandbox state = %q, want %q", sb.State, stateRunning)
	}

	var stdout, stderr bytes.Buffer
	code, err := env.client.Exec(ctx, "sb", client.ExecRequest{Args: []string{"a", "b"}, Env: []string{"X=1"}, Stdin: []byte("input")}, &stdout, &stderr)
	if err != nil || code != 7 || stdout.String() != "a\nb\n" || stderr.String() != "err" {
		t.Errorf("Exec = %d, %v, stdout %q, stderr %q; want 7, nil, %q, %q", code, err, stdout.String(), stderr.String(), "a\nb\n", "err")
	}
	if diff := cmp.Diff([]string{"GITHUB_TOKEN=" + sb.Bindings[0].StandIn, "X=1"}, fr.env); diff != "" {
		t.Errorf("Exec env (-want +got):\n%s", diff)
	}
	if fr.stdin != "input" {
		t.Errorf("Exec stdin = %q, want %q", fr.stdin, "input")
	}

	// A detach is seen by the next command.
	if err := env.client.Detach(ctx, "sb", "GITHUB_TOKEN"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.Exec(ctx, "sb", client.ExecRequest{Args: []string{"x"}}, nil, nil); err != nil || len(fr.env) != 0 {
		t.Errorf("Exec after detach = %v, env %q; want no stand-ins", err, fr.env)
	}

	bad := []struct {
		name string
		req  client.ExecRequest
	}{
		{"no args", client.ExecRequest{}},
		{"empty command", client.ExecRequest{Args: []string{""}}},
		{"NUL in args", client.ExecRequest{Args: []string{"a\x00b"}}},
		{"env without =", client.ExecRequest{Args: []string{"x"}, Env: []string{"X"}}},
		{"relative dir", client.ExecRequest{Args: []string{"x"}, Dir: "tmp"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.client.Exec(ctx, "sb", tt.req, nil, nil)
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Errorf("Exec(%+v) = %v, want 400", tt.req, err)
			}
		})
	}
	if _, err := env.client.Exec(ctx, "nope", client.ExecRequest{Args: []string{"x"}}, nil, nil); !client.IsNotFound(err) {
		t.Errorf("Exec on a missing sandbox = %v, want not_found", err)
	}

	if err := env.client.DeleteSandbox(ctx, "sb"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fr.stopped, []string{sb.ID}) {
		t.Errorf("runner stopped %q, want [%s]", fr.stopped, sb.ID)
	}
}
