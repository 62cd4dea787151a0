package server

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/testutil"
)

// TestInteractiveShell drives a shell on a pseudo-terminal in a real
// sandbox: each command's output comes back while the input is still open,
// and the shell's exit status ends the exec.
func TestInteractiveShell(t *testing.T) {
	cfg := sandboxConfig(t)
	c := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sh"}); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}

	inR, inW := io.Pipe()
	out := &testutil.SyncBuffer{}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	resize := make(chan client.WindowSize, 1)
	go func() {
		code, err := c.ExecInteractive(ctx, "sh", client.ExecRequest{Args: []string{"sh"}, TTY: true, Rows: 33, Cols: 101}, inR, out, nil,
			client.WithResize(resize))
		done <- result{code, err}
	}()
	// waitFor waits for want in the output; the bound only keeps a broken
	// stream from hanging the test.
	waitFor := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), want); time.Sleep(50 * time.Millisecond) {
			select {
			case r := <-done:
				t.Fatalf("shell ended (%d, %v) before printing %q; output:\n%s", r.code, r.err, want, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the shell's output; output:\n%s", want, out.String())
			}
		}
	}
	// The arithmetic makes the expected text differ from the echoed input.
	io.WriteString(inW, "test -t 0 && echo tty-$((20+1)); stty size\n")
	waitFor("tty-21")
	waitFor("33 101")
	io.WriteString(inW, "echo second-$((1+1))\n")
	waitFor("second-2")
	// The window grows: the terminal inside follows. The shell polls, so
	// nothing here depends on when the resize lands.
	resize <- client.WindowSize{Rows: 50, Cols: 132}
	io.WriteString(inW, `while [ "$(stty size)" != "50 132" ]; do sleep 0.05; done; echo resized-$((2+2))`+"\n")
	waitFor("resized-4")
	io.WriteString(inW, "exit 5\n")
	if r := <-done; r.err != nil || r.code != 5 {
		t.Errorf("ExecInteractive = %d, %v; want 5, nil", r.code, r.err)
	}
	inW.Close()
}
