package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/testutil"
)

// The tests run the agent as a child process: this test binary, started
// with ArgAgent, which Main turns into the agent.
func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}

// startAgent runs an agent process and returns a client for it.
func startAgent(tb testing.TB) (*Client, *exec.Cmd) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], ArgAgent)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return NewClient(stdout, stdin), cmd
}

var testEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}

type result struct {
	code           int
	stdout, stderr string
}

func run(tb testing.TB, c *Client, s Spec) (result, error) {
	tb.Helper()
	var out, errb testutil.SyncBuffer
	if s.Stdout == nil {
		s.Stdout = &out
	}
	if s.Stderr == nil {
		s.Stderr = &errb
	}
	if s.Env == nil {
		s.Env = testEnv
	}
	if s.Dir == "" {
		s.Dir = "/"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := c.Exec(ctx, s)
	return result{code, out.String(), errb.String()}, err
}

func TestExec(t *testing.T) {
	c, _ := startAgent(t)
	tests := []struct {
		name string
		spec Spec
		want result
	}{
		{"streams", Spec{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, result{3, "out\n", "err\n"}},
		{"env", Spec{Args: []string{"sh", "-c", "echo $FOO"}, Env: append(testEnv, "FOO=bar")}, result{0, "bar\n", ""}},
		{"dir", Spec{Args: []string{"pwd"}, Dir: "/usr"}, result{0, "/usr\n", ""}},
		{"signal", Spec{Args: []string{"sh", "-c", "kill -9 $$"}}, result{137, "", ""}},
		{"no stdin is empty", Spec{Args: []string{"cat"}}, result{0, "", ""}},
		{"stdin", Spec{Args: []string{"cat"}, Stdin: strings.NewReader("hello\n")}, result{0, "hello\n", ""}},
		{"absolute path", Spec{Args: []string{"/bin/echo", "x"}}, result{0, "x\n", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run(t, c, tt.spec)
			if err != nil || got != tt.want {
				t.Errorf("Exec(%q) = %+v, %v; want %+v", tt.spec.Args, got, err, tt.want)
			}
		})
	}
}

func TestCombinedKeepsOrder(t *testing.T) {
	c, _ := startAgent(t)
	var both testutil.SyncBuffer
	got, err := run(t, c, Spec{Args: []string{"sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2"}, Stdout: &both, Stderr: &both})
	if err != nil || got.code != 0 || both.String() != "1\n2\n3\n4\n" {
		t.Errorf("combined output = %q (%+v, %v), want 1..4 in order", both.String(), got, err)
	}
}

func TestStartErrors(t *testing.T) {
	c, _ := startAgent(t)
	for _, s := range []Spec{
		{Args: []string{"no-such-command-xyz"}},
		{Args: []string{"/no/such/file"}},
		{Args: []string{"true"}, Dir: "/no/such/dir"},
		{Args: []string{"true"}, Dir: "/etc/hostname"}, // not a directory
		{Args: []string{""}},
	} {
		_, err := run(t, c, s)
		if !errors.Is(err, ErrStart) {
			t.Errorf("Exec(%q in %q) = %v, want ErrStart", s.Args, s.Dir, err)
		}
		if s.Dir != "" && (err == nil || !strings.Contains(err.Error(), s.Dir) || strings.Contains(err.Error(), "%!")) {
			t.Errorf("Exec(%q in %q) = %v, want an error naming the directory", s.Args, s.Dir, err)
		}
	}
	// The agent still works.
	if got, err := run(t, c, Spec{Args: []string{"true"}}); err != nil || got.code != 0 {
		t.Errorf("Exec(true) after failures = %+v, %v", got, err)
	}
}

// TestLargeStreams moves 8 MiB through cat each way: more than the window,
// so it only finishes if acknowledgements flow.
func TestLargeStreams(t *testing.T) {
	c, _ := startAgent(t)
	in := make([]byte, 8<<20)
	rand.Read(in)
	h := sha256.New()
	code, err := c.Exec(context.Background(), Spec{Args: []string{"cat"}, Env: testEnv, Dir: "/", Stdin: bytes.NewReader(in), Stdout: h})
	if err != nil || code != 0 {
		t.Fatalf("cat = %d, %v", code, err)
	}
	want := sha256.Sum256(in)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("cat's output differs from its input")
	}
}

// slowWriter blocks every write until released.
type slowWriter struct{ release chan struct{} }

func (w *slowWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// TestSlowReaderDoesNotStallOthers: one command whose output nobody reads
// fills its window; other commands still run.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	c, _ := startAgent(t)
	slow := &slowWriter{release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), Spec{Args: []string{"head", "-c", "4000000", "/dev/zero"}, Env: testEnv, Dir: "/", Stdout: slow})
		done <- err
	}()
	for i := 0; i < 5; i++ {
		if got, err := run(t, c, Spec{Args: []string{"echo", "hi"}}); err != nil || got.stdout != "hi\n" {
			t.Fatalf("echo beside a stalled command = %+v, %v", got, err)
		}
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Errorf("stalled command after release: %v", err)
	}
}

func TestCancelKillsProcessGroup(t *testing.T) {
	c, _ := startAgent(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.SyncBuffer
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, Spec{Args: []string{"sh", "-c", "sleep 300 & echo $! > " + dir + "/bg; echo started; wait"},
			Env: testEnv, Dir: "/", Stdout: &out})
		errc <- err
	}()
	for !strings.Contains(out.String(), "started") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec after cancel = %v, want context.Canceled", err)
	}
	pid, err := os.ReadFile(dir + "/bg")
	if err != nil {
		t.Fatal(err)
	}
	// The background sleep was in the group: it is gone (or a zombie
	// until the agent reaps it, which it does on SIGCHLD).
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background process %s still running after cancel", strings.TrimSpace(string(pid)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTTY(t *testing.T) {
	c, _ := startAgent(t)
	got, err := run(t, c, Spec{Args: []string{"sh", "-c", "test -t 0 && test -t 1 && stty size"}, TTY: true, Rows: 40, Cols: 100})
	if err != nil || got.code != 0 || strings.TrimSpace(got.stdout) != "40 100" {
		t.Errorf("stty size on a 40x100 TTY = %+v, %v", got, err)
	}
	// The command waits for the new size itself: no timing involved.
	resize := make(chan sandbox.WindowSize, 1)
	resize <- sandbox.WindowSize{Rows: 50, Cols: 132}
	var out testutil.SyncBuffer
	code, err := c.Exec(context.Background(), Spec{Args: []string{"sh", "-c", `while [ "$(stty size)" != "50 132" ]; do sleep 0.05; done; echo resized`},
		Env: testEnv, Dir: "/", TTY: true, Stdout: &out, Resize: resize})
	if err != nil || code != 0 || !strings.Contains(out.String(), "resized") {
		t.Errorf("command waiting for a resize to 50x132 = %d, %q, %v", code, out.String(), err)
	}
}

func TestAgentGone(t *testing.T) {
	c, cmd := startAgent(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), Spec{Args: []string{"sleep", "300"}, Env: testEnv, Dir: "/"})
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Kill()
	if err := <-errc; !errors.Is(err, ErrGone) {
		t.Errorf("Exec when the agent dies = %v, want ErrGone", err)
	}
	if _, err := run(t, c, Spec{Args: []string{"true"}}); !errors.Is(err, ErrGone) {
		t.Errorf("Exec after the agent died = %v, want ErrGone", err)
	}
}

// FuzzClientFrames feeds arbitrary bytes as the agent's output: the
// client must not panic or hang, and Exec must end.
func FuzzClientFrames(f *testing.F) {
	f.Add([]byte{tExit, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7})
	f.Add([]byte{tStdout, 0, 0, 0, 1, 0, 0, 0, 2, 'h', 'i', tExit, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{tFailed, 0, 0, 0, 1, 0, 0, 0, 3, 'b', 'a', 'd'})
	f.Add([]byte{tStdout, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewClient(bytes.NewReader(data), io.Discard)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.Exec(ctx, Spec{Args: []string{"x"}, Stdout: io.Discard})
	})
}

// TestCheckProtocol: a binary whose main calls Main (this test binary)
// passes; one that answers another version, or nothing, is refused.
func TestCheckProtocol(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckProtocol(context.Background(), self); err != nil {
		t.Errorf("CheckProtocol(this test binary) = %v, want nil", err)
	}
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, body, want string
	}{
		{"other-version", fmt.Sprintf("echo %d", Protocol+1), "speaks protocol"},
		{"old-build", "echo 'standin-agent runs inside sandboxes only' >&2; exit 2", "does not answer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckProtocol(context.Background(), script(tt.name, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckProtocol(%s) = %v, want an error with %q", tt.name, err, tt.want)
			}
		})
	}
}
