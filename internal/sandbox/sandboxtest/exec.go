package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
)

func (s *suite) testExec(t *testing.T) {
	r := s.cfg.New(t)
	in := Start(t, r, sandbox.Spec{Env: []string{"FROM_SPEC=spec", "OVERRIDDEN=spec"}})

	tests := []struct {
		name string
		args []string
		env  []string
		dir  string
		want Result
	}{
		{"echo", []string{"echo", "hi"}, nil, "", Result{Stdout: "hi\n"}},
		{"exit status", []string{"sh", "-c", "exit 3"}, nil, "", Result{Exit: 3}},
		{"killed by signal", []string{"sh", "-c", "kill -9 $$"}, nil, "", Result{Exit: 128 + 9}},
		{"terminated", []string{"sh", "-c", "kill -TERM $$"}, nil, "", Result{Exit: 128 + 15}},
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 1"}, nil, "", Result{Stderr: "oops\n", Exit: 1}},
		{"not root", []string{"id", "-u"}, nil, "", Result{Stdout: "65534\n"}},
		{"groups", []string{"id", "-G"}, nil, "", Result{Stdout: "65534\n"}},
		{"home", []string{"sh", "-c", `echo "$HOME"; pwd`}, nil, "", Result{Stdout: "/home/sandbox\n/home/sandbox\n"}},
		{"dir", []string{"pwd"}, nil, "/usr", Result{Stdout: "/usr\n"}},
		{"env", []string{"sh", "-c", `echo "$FROM_SPEC $OVERRIDDEN $FROM_EXEC"`},
			[]string{"OVERRIDDEN=exec", "FROM_EXEC=exec"}, "", Result{Stdout: "spec exec exec\n"}},
		{"whole env", []string{"env"}, []string{"LANG=C"}, "", Result{Stdout: strings.Join([]string{
			"PATH=" + sandbox.DefaultPath, "HOME=/home/sandbox", "LANG=C", "FROM_SPEC=spec", "OVERRIDDEN=spec", ""}, "\n")}},
		{"hostname", []string{"hostname"}, nil, "", Result{Stdout: "sandbox\n"}},
		{"umask", []string{"sh", "-c", "umask"}, nil, "", Result{Stdout: "0022\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Exec(t, in, sandbox.ExecSpec{Args: tt.args, Env: tt.env, Dir: tt.dir})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Exec(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	t.Run("spec user and hostname", func(t *testing.T) {
		other := Start(t, r, sandbox.Spec{UID: 1234, GID: 4321, Hostname: "box-1"})
		got := Sh(t, other, `id -u; id -g; hostname; stat -c %u:%g "$HOME"`)
		if want := "1234\n4321\nbox-1\n1234:4321\n"; got.Stdout != want {
			t.Errorf("with UID, GID, Hostname = %+v, want %q", got, want)
		}
	})
}

func (s *suite) testExecStdio(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	t.Run("stdin", func(t *testing.T) {
		input := strings.Repeat("line of input\n", 10000) // more than a pipe holds
		got := Exec(t, in, sandbox.ExecSpec{Args: []string{"sha256sum"}, Stdin: strings.NewReader(input)})
		want := Sh(t, in, "printf 'line of input\\n%.0s' $(seq 10000) | sha256sum")
		if got.Stdout != want.Stdout || got.Exit != 0 {
			t.Errorf("sha256sum of stdin = %+v, want %+v", got, want)
		}
	})

	t.Run("no stdin", func(t *testing.T) {
		// The command reads an empty input rather than blocking.
		if got := Cmd(t, in, "cat"); got != (Result{}) {
			t.Errorf("cat without stdin = %+v, want no output, exit 0", got)
		}
	})

	t.Run("combined output", func(t *testing.T) {
		// In one buffer, in order.
		var buf bytes.Buffer
		code, err := in.Exec(context.Background(), sandbox.ExecSpec{
			Args: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}, Stdout: &buf, Stderr: &buf})
		if err != nil || code != 0 || buf.String() != "out\nerr\nout2\n" {
			t.Errorf("combined output = %q, %d, %v; want %q, 0, nil", buf.String(), code, err, "out\nerr\nout2\n")
		}
	})

	t.Run("streaming", func(t *testing.T) {
		// Output arrives while the command still runs, and input reaches
		// it as it is written.
		pr, pw := io.Pipe()
		lines := make(chan string, 2)
		done := make(chan error, 1)
		go func() {
			_, err := in.Exec(context.Background(), sandbox.ExecSpec{
				Args:  []string{"sh", "-c", "while read l; do echo got $l; done"},
				Stdin: pr,
				Stdout: WriterFunc(func(p []byte) (int, error) {
					lines <- string(p)
					return len(p), nil
				})})
			done <- err
		}()
		for _, l := range []string{"a", "b"} {
			fmt.Fprintln(pw, l)
			if got := <-lines; got != "got "+l+"\n" {
				t.Errorf("streamed output = %q, want %q", got, "got "+l+"\n")
			}
		}
		pw.Close()
		if err := <-done; err != nil {
			t.Errorf("streaming Exec: %v", err)
		}
	})
}

func (s *suite) testExecErrors(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	t.Run("not found", func(t *testing.T) {
		for _, c := range []string{"/no/such/command", "no-such-command"} {
			_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{c}})
			if err == nil || !strings.Contains(err.Error(), c) {
				t.Errorf("Exec(%q) = %v, want an error naming it", c, err)
			}
		}
	})
	t.Run("bad dir", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}, Dir: "/no/such/dir"})
		switch {
		case err == nil:
			t.Errorf("Exec(Dir: missing) succeeded")
		case s.cfg.Gaps.ExecDirUnnamed:
			t.Logf("known gap: the error does not name the missing Dir: %v", err)
		case !strings.Contains(err.Error(), "/no/such/dir"):
			t.Errorf("Exec(Dir: missing) = %v, want an error naming it", err)
		}
	})
	t.Run("no args", func(t *testing.T) {
		if _, err := in.Exec(context.Background(), sandbox.ExecSpec{}); !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(no args) = %v, want ErrInvalidSpec", err)
		}
	})
	t.Run("bad env", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"NOEQUALS"}})
		if !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(bad env) = %v, want ErrInvalidSpec", err)
		}
	})
	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		// The shell's child goes too.
		_, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"sh", "-c", "sleep 1001; true"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec(sleep) with deadline = %v, want DeadlineExceeded", err)
		}
		if got := Sh(t, in, "ps -eo args= | grep -c '^sleep 1001'"); got.Stdout != "0\n" {
			t.Errorf("sleep still running inside after its context ended: %q", got.Stdout)
		}
	})
	t.Run("background keeps stdout", func(t *testing.T) {
		// Exec returns (after DrainIdle) although a background process
		// still holds its stdout.
		got := Sh(t, in, "sleep 1000 & echo started")
		if got.Stdout != "started\n" || got.Exit != 0 {
			t.Errorf("background command = %+v, want \"started\\n\", exit 0", got)
		}
	})
}

// Output written before the command exited reaches a slow writer in full,
// even when delivering it takes longer than DrainIdle.
func (s *suite) testExecSlowWriter(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	var got int
	calls := 0
	w := WriterFunc(func(p []byte) (int, error) {
		calls++
		if calls == 1 {
			time.Sleep(s.cfg.DrainIdle + 500*time.Millisecond)
		}
		got += len(p)
		return len(p), nil
	})
	code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"head", "-c", "65536", "/dev/zero"}, Stdout: w})
	if err != nil || code != 0 || got != 65536 {
		t.Errorf("Exec(head -c 65536) to a slow writer = %d, %v, %d bytes; want 0, nil, 65536 bytes", code, err, got)
	}
}

func (s *suite) testExecConcurrent(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	const n = 8
	results := make(chan string, n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			// Each gets its own output, and sees the files of the others:
			// one filesystem. Each waits (at most 30 s) until it sees all
			// n files, so all n run at once, whatever the machine's load.
			script := fmt.Sprintf("touch /tmp/f%d; i=0; while [ $(ls /tmp | grep -c '^f[0-9]$') -lt %d ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo %d $(ls /tmp | grep -c '^f[0-9]$')", i, n, i)
			code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"sh", "-c", script}, Stdout: &out})
			results <- fmt.Sprintf("%d %q %v", code, out.String(), err)
		}()
	}
	var got, want []string
	for i := range n {
		got = append(got, <-results)
		want = append(want, fmt.Sprintf("0 %q <nil>", fmt.Sprintf("%d %d\n", i, n)))
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("concurrent Execs (-want +got):\n%s", diff)
	}
}

func (s *suite) testTTY(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	t.Run("terminal", func(t *testing.T) {
		got := Exec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "test -t 0 && test -t 1 && stty size && echo $TERM && tty && stat -c %u /proc/self/fd/0"}, TTY: true, Rows: 40, Cols: 100})
		if want := "40 100\r\nxterm-256color\r\n/dev/pts/0\r\n65534\r\n"; got.Exit != 0 || got.Stdout != want {
			t.Errorf("with TTY = %+v, want exit 0, %q", got, want)
		}
	})
	t.Run("default size", func(t *testing.T) {
		if got := Exec(t, in, sandbox.ExecSpec{Args: []string{"stty", "size"}, TTY: true}); got.Stdout != "24 80\r\n" {
			t.Errorf("default size = %+v, want 24 80", got)
		}
	})
	t.Run("no tty", func(t *testing.T) {
		if got := Sh(t, in, "test -t 0 || test -t 1"); got.Exit != 1 {
			t.Errorf("without TTY: test -t exit %d, want 1", got.Exit)
		}
	})
	t.Run("input", func(t *testing.T) {
		// Input typed at the terminal reaches the command.
		got := Exec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "read line; echo got $line"}, TTY: true, Stdin: strings.NewReader("hello\n")})
		if got.Exit != 0 || !strings.HasSuffix(got.Stdout, "got hello\r\n") {
			t.Errorf("read from TTY = %+v, want output ending in \"got hello\\r\\n\"", got)
		}
	})
	t.Run("controlling terminal", func(t *testing.T) {
		// The terminal is the command's controlling terminal (/dev/tty
		// reaches it), with the command in the foreground: ^C reaches it.
		got := Exec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c",
			"echo via-tty > /dev/tty; python3 -c 'import os; print(os.tcgetpgrp(0) == os.getpgrp())'"}, TTY: true})
		if want := "via-tty\r\nTrue\r\n"; got.Stdout != want {
			t.Errorf("controlling terminal = %+v, want %q", got, want)
		}
	})
	t.Run("resize", func(t *testing.T) {
		// The command waits for the new size: it fails only by timing out.
		resize := make(chan sandbox.WindowSize, 1)
		resize <- sandbox.WindowSize{Rows: 50, Cols: 132}
		got := Exec(t, in, sandbox.ExecSpec{
			Args: []string{"sh", "-c", `while [ "$(stty size)" != "50 132" ]; do sleep 0.05; done; echo resized`},
			TTY:  true, Resize: resize})
		if got.Exit != 0 || got.Stdout != "resized\r\n" {
			t.Errorf("command waiting for a resize to 50x132 = %+v, want exit 0, %q", got, "resized\r\n")
		}
	})
}
