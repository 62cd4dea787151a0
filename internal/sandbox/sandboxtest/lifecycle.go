package sandboxtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/standin/standin/internal/sandbox"
)

// Delete stops every process of the sandbox and leaves nothing of it on the
// host; deleting twice is fine, Exec afterwards says ErrNotFound, and the ID
// can be used again.
func (s *suite) testDelete(t *testing.T) {
	r := s.cfg.New(t)
	in := Start(t, r, sandbox.Spec{})
	Sh(t, in, "sleep 1000 >/dev/null 2>&1 & sleep 1001 >/dev/null 2>&1 &")
	if got := Sh(t, in, "ps -eo args= | grep -c '^sleep 100[01]$'"); got.Stdout != "2\n" {
		t.Fatalf("background sleeps running = %+v, want 2", got)
	}
	leftovers := s.cfg.Leftovers(t, in)
	if left := leftovers(); len(left) == 0 {
		t.Fatal("Leftovers found nothing of a running sandbox: the check after Delete would prove nothing")
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if left := leftovers(); len(left) != 0 {
		t.Errorf("left on the host after Delete: %q", left)
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if _, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec after Delete = %v, want ErrNotFound", err)
	}
	// The ID can be used again.
	if got := Cmd(t, Start(t, r, sandbox.Spec{ID: in.ID()}), "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("sandbox of a deleted one's ID = %+v", got)
	}
}

// Delete ends the commands still running; their Exec returns ErrNotFound.
func (s *suite) testDeleteDuringExec(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{
			Args: []string{"sh", "-c", "echo started; exec sleep 1000"}, Stdout: WriterFunc(func(p []byte) (int, error) {
				once.Do(func() { close(started) })
				return len(p), nil
			})})
		done <- err
	}()
	<-started
	leftovers := s.cfg.Leftovers(t, in)
	if left := leftovers(); len(left) == 0 {
		t.Fatal("Leftovers found nothing of a running sandbox: the check after Delete would prove nothing")
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := <-done; !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec interrupted by Delete = %v, want ErrNotFound", err)
	}
	if left := leftovers(); len(left) != 0 {
		t.Errorf("left on the host after Delete: %q", left)
	}
}

// Start refuses what Spec.Validate refuses, and an ID in use, with
// ErrInvalidSpec; a Start that failed leaves the ID free.
func (s *suite) testStartErrors(t *testing.T) {
	r := s.cfg.New(t)
	in := Start(t, r, sandbox.Spec{})

	tests := []struct {
		name string
		spec sandbox.Spec
	}{
		{"id in use", sandbox.Spec{ID: in.ID()}},
		{"bad id", sandbox.Spec{ID: "../x"}},
		{"bad env", sandbox.Spec{ID: ID(), Env: []string{"NOEQUALS"}}},
		{"long hostname", sandbox.Spec{ID: ID(), Hostname: strings.Repeat("h", 65)}},
		{"relative hide", sandbox.Spec{ID: ID(), Hide: []string{"data"}}},
		{"hide root", sandbox.Spec{ID: ID(), Hide: []string{"/"}}},
		{"missing mount", sandbox.Spec{ID: ID(), Mounts: []sandbox.Mount{{Source: "/no/such", Target: "/x"}}}},
		{"mount on root", sandbox.Spec{ID: ID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/"}}}},
		{"relative netns", sandbox.Spec{ID: ID(), NetNS: "run/netns/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(context.Background(), tt.spec); !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("Start(%+v) = %v, want ErrInvalidSpec", tt.spec, err)
			}
		})
	}
	if got := Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("running sandbox after refused Starts: %+v", got)
	}

	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		id := ID()
		if _, err := r.Start(ctx, sandbox.Spec{ID: id}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start(cancelled) = %v, want context.Canceled", err)
		}
		if got := Cmd(t, Start(t, r, sandbox.Spec{ID: id}), "echo", "alive"); got.Stdout != "alive\n" {
			t.Errorf("sandbox of the ID of a cancelled Start = %+v", got)
		}
	})
}
