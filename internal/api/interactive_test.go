package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox"
)

// echoRunner echoes each line of input as it arrives and exits 3 at the
// end of its input.
type echoRunner struct {
	fakeRunner
	mu   sync.Mutex
	spec sandbox.ExecSpec // of the last Exec
}

func (f *echoRunner) Exec(ctx context.Context, id string, spec sandbox.ExecSpec) (int, error) {
	f.mu.Lock()
	f.spec = spec
	f.mu.Unlock()
	sc := bufio.NewScanner(spec.Stdin)
	for sc.Scan() {
		io.WriteString(spec.Stdout, "echo: "+sc.Text()+"\n")
	}
	return 3, nil
}

// lineWriter delivers what is written to it, line by line, on a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   string
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf += string(p)
	for {
		line, rest, ok := strings.Cut(w.buf, "\n")
		if !ok {
			return len(p), nil
		}
		w.lines <- line
		w.buf = rest
	}
}

func TestExecInteractive(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	fr := &echoRunner{}
	env.server.Sandboxes = fr
	if _, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"}); err != nil {
		t.Fatal(err)
	}

	inR, inW := io.Pipe()
	out := &lineWriter{lines: make(chan string, 10)}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := env.client.ExecInteractive(ctx, "sb",
			client.ExecRequest{Args: []string{"sh"}, TTY: true, Rows: 40, Cols: 120, Stdin: []byte("first\n")}, inR, out, nil)
		done <- result{code, err}
	}()
	// Each line comes back while the input is still open: the request
	// body is read as it is sent.
	for _, in := range []string{"", "second\n", "third\n"} {
		if in != "" {
			if _, err := io.WriteString(inW, in); err != nil {
				t.Fatal(err)
			}
		}
		want := "echo: " + strings.TrimSpace(in)
		if in == "" {
			want = "echo: first"
		}
		select {
		case got := <-out.lines:
			if got != want {
				t.Errorf("output line = %q, want %q", got, want)
			}
		case r := <-done:
			t.Fatalf("ExecInteractive ended early: %d, %v", r.code, r.err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no output for input %q while the input is open", in)
		}
	}
	inW.Close()
	if r := <-done; r.err != nil || r.code != 3 {
		t.Errorf("ExecInteractive = %d, %v; want 3, nil", r.code, r.err)
	}
	fr.mu.Lock()
	spec := fr.spec
	fr.mu.Unlock()
	if !spec.TTY || spec.Rows != 40 || spec.Cols != 120 {
		t.Errorf("runner spec TTY, Rows, Cols = %v, %d, %d; want true, 40, 120", spec.TTY, spec.Rows, spec.Cols)
	}

	// The client is still usable on the same connection pool.
	if _, err := env.client.GetSandbox(ctx, "sb"); err != nil {
		t.Errorf("GetSandbox after an interactive exec: %v", err)
	}

	// Errors before the stream starts are statuses.
	_, err := env.client.ExecInteractive(ctx, "nope", client.ExecRequest{Args: []string{"sh"}}, strings.NewReader(""), nil, nil)
	if !client.IsNotFound(err) {
		t.Errorf("ExecInteractive in a missing sandbox = %v, want not_found", err)
	}
	_, err = env.client.ExecInteractive(ctx, "sb", client.ExecRequest{}, strings.NewReader(""), nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("ExecInteractive without args = %v, want 400", err)
	}
	for _, body := range []string{"{\"args\":[\"sh\"],\"bogus\":1}\n", "", "not json\n"} {
		resp := env.do(t, "POST", "/v1/sandboxes/sb/exec", body, "Content-Type", "application/x-ndjson")
		if resp.status != http.StatusBadRequest {
			t.Errorf("interactive exec with body %q = %d, want 400", body, resp.status)
		}
		// Its input may still be coming: the connection must not be
		// kept for another request (golang/go#68560).
		if !resp.close {
			t.Errorf("interactive exec with body %q: the connection is kept alive, want Connection: close", body)
		}
	}
}
