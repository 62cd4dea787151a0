package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/store"
)

// stateRunning is a sandbox's state while the runtime runs it.
const stateRunning = "running"

// Codes of the sandbox runtime's errors.
const (
	CodeNotRunning         = "not_running"
	CodeRuntimeUnavailable = "runtime_unavailable"
	CodeStartFailed        = "sandbox_start_failed"
)

// ErrNotRunning is returned by a Runner for a sandbox it does not run.
var ErrNotRunning = errors.New("sandbox not running")

// Runner runs sandboxes on behalf of the API (package server's orchestrator).
type Runner interface {
	// Start starts the sandbox sb. When it fails, nothing of the sandbox is
	// left behind.
	Start(ctx context.Context, sb *store.Sandbox) error
	// Exec runs a command in a running sandbox (ErrNotRunning if it is
	// not). spec.Env is the sandbox's current stand-ins, then the caller's.
	Exec(ctx context.Context, sandboxID string, spec sandbox.ExecSpec) (int, error)
	// Stop stops a sandbox and removes all it used; stopping one that is
	// not running is not an error.
	Stop(ctx context.Context, sandboxID string) error
	// Running reports whether the sandbox is running.
	Running(sandboxID string) bool
}

// Exec limits: stdin travels in the body (base64, so a third larger).
const (
	maxExecStdin = 1 << 20
	maxExecBody  = maxExecStdin*4/3 + maxBody
)

// startSandbox starts a stored sandbox; on failure the record is deleted
// again, so a failed create leaves nothing.
func (s *Server) startSandbox(r *http.Request, sb *store.Sandbox) error {
	ctx := r.Context()
	err := s.Sandboxes.Start(ctx, sb)
	if err == nil {
		if err = s.Store.SetSandboxState(ctx, sb.ID, stateRunning); err == nil {
			sb.State = stateRunning
			return nil
		}
		if serr := s.Sandboxes.Stop(context.WithoutCancel(ctx), sb.ID); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if derr := s.Store.DeleteSandbox(context.WithoutCancel(ctx), sb.ID); derr != nil {
		err = errors.Join(err, fmt.Errorf("delete the record again: %w", derr))
	}
	id := requestID(r)
	s.logger().LogAttrs(ctx, slog.LevelError, "sandbox start failed",
		slog.String(logKeyRequestID, id), slog.Any(logKeyError, err))
	if errors.Is(err, sandbox.ErrUnavailable) {
		return newError(http.StatusServiceUnavailable, CodeRuntimeUnavailable,
			"the sandbox runtime is unavailable on this server; nothing was created; the server log has the detail under request id %s", id)
	}
	return newError(http.StatusInternalServerError, CodeStartFailed,
		"sandbox %q could not be started; nothing was created; the server log has the detail under request id %s", sb.Name, id)
}

// exec answers POST /v1/sandboxes/{name}/exec with an NDJSON stream of
// client.ExecEvent: output as it arrives, then the exit status. A request
// body of Content-Type application/x-ndjson is interactive: an ExecRequest
// line, then client.ExecInput lines fed to the command as they arrive (the
// connection is full duplex).
func (s *Server) exec(w http.ResponseWriter, r *http.Request) error {
	var req client.ExecRequest
	var input *bufio.Scanner
	rc := http.NewResponseController(w)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == ndjson {
		// Full duplex first: without it net/http reads the rest of the body
		// before sending any response, an error included, and the client
		// sends its input only as it comes. HTTP/2 is full duplex anyway.
		if err := rc.EnableFullDuplex(); err != nil && r.ProtoMajor == 1 {
			return fmt.Errorf("interactive exec: %w", err)
		}
		// One connection per interactive exec. Its input may still be
		// coming when the answer ends (an error, or the command exited):
		// in full duplex the server then reads the rest of the body after
		// the handler, and on a kept-alive connection reaching its end
		// starts a read of the next request beside the server's own,
		// which panics (golang/go#68560); and input cut short by the
		// read deadline below would be read as the next request.
		w.Header().Set("Connection", "close")
		input = bufio.NewScanner(r.Body)
		input.Buffer(make([]byte, 0, 64<<10), maxExecBody)
		if err := scanLine(input, &req); errors.Is(err, io.EOF) {
			return badRequest(CodeInvalidJSON, "request body is empty; send an ExecRequest line")
		} else if err != nil {
			return err
		}
	} else if err := decodeBodyLimit(w, r, &req, maxExecBody); err != nil {
		return err
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return badRequest(CodeInvalidField, "args must name a command")
	}
	if len(req.Stdin) > maxExecStdin {
		return newError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "stdin is larger than %d bytes", maxExecStdin)
	}
	for _, a := range req.Args {
		if strings.ContainsRune(a, 0) {
			return badRequest(CodeInvalidField, "args must not contain NUL bytes")
		}
	}
	for i, e := range req.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsRune(e, 0) {
			return badRequest(CodeInvalidField, "env[%d] must be KEY=value without NUL bytes", i)
		}
	}
	if strings.ContainsRune(req.Dir, 0) || (req.Dir != "" && !strings.HasPrefix(req.Dir, "/")) {
		return badRequest(CodeInvalidField, "dir must be an absolute path")
	}
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	if s.Sandboxes == nil || !s.Sandboxes.Running(sb.ID) {
		return notRunning(sb)
	}
	// The environment is built now, not at start: a secret attached or
	// detached since is seen by this command.
	v, err := s.sandboxView(r, sb)
	if err != nil {
		return err
	}
	var env []string
	for _, b := range v.Bindings {
		if b.StandIn != "" { // an imported stand-in is not known to us
			env = append(env, b.EnvVar+"="+b.StandIn)
		}
	}
	env = append(env, req.Env...)

	var stdin io.Reader = bytes.NewReader(req.Stdin)
	var resize chan sandbox.WindowSize
	if input != nil && req.TTY {
		resize = make(chan sandbox.WindowSize, 1)
	}
	if input != nil {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if len(req.Stdin) > 0 {
				if _, err := pw.Write(req.Stdin); err != nil {
					return
				}
			}
			pw.CloseWithError(feedInput(input, pw, resize))
		}()
		defer func() {
			// The handler must not return while the body is being read:
			// end a blocked read, then wait for the reader.
			pr.Close()
			select {
			case <-done:
			default:
				// The connection is not reused (Connection: close above),
				// which is what a half-read body needs.
				rc.SetReadDeadline(time.Now())
				<-done
			}
		}()
		stdin = pr
	}

	w.Header().Set("Content-Type", ndjson)
	w.WriteHeader(http.StatusOK)
	ew := &eventWriter{enc: json.NewEncoder(w), rc: rc}
	ew.rc.Flush()
	spec := sandbox.ExecSpec{
		Args: req.Args, Env: env, Dir: req.Dir,
		Stdin:  stdin,
		Stdout: ew.stream("stdout"), Stderr: ew.stream("stderr"),
		TTY: req.TTY, Rows: req.Rows, Cols: req.Cols,
	}
	if resize != nil {
		spec.Resize = resize
	}
	code, err := s.Sandboxes.Exec(r.Context(), sb.ID, spec)
	switch {
	case errors.Is(err, ErrNotRunning):
		e := notRunning(sb)
		ew.write(client.ExecEvent{Error: &client.ErrorDetail{Code: e.Code, Message: e.Message}})
	case err != nil:
		id := requestID(r)
		s.logger().LogAttrs(r.Context(), slog.LevelError, "exec failed",
			slog.String(logKeyRequestID, id), slog.Any(logKeyError, err))
		ew.write(client.ExecEvent{Error: &client.ErrorDetail{Code: CodeInternal,
			Message: "the command could not be run; the server log has the detail under request id " + id}})
	default:
		ew.write(client.ExecEvent{ExitCode: &code})
	}
	return nil
}

// ndjson is the media type of exec's streams.
const ndjson = "application/x-ndjson"

// scanLine decodes the next line of an interactive exec's body into v,
// with decodeBody's rules.
func scanLine(sc *bufio.Scanner, v any) error {
	if !sc.Scan() {
		if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
			return newError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "a line of the request body is larger than %d bytes", maxExecBody)
		} else if err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
		return io.EOF
	}
	dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest(CodeInvalidJSON, "each line of the request body must hold one JSON object")
	}
	return nil
}

// feedInput copies the ExecInput lines of an interactive exec to w until
// the body ends or a line says EOF, and their window sizes to resize (nil
// for a command without a TTY: sizes are dropped). A bad line ends the
// input, like the end of the body: the output stream has started, so it
// has no status to report it with, and the command sees its input close.
// Input after EOF is not read: a later resize is lost.
func feedInput(sc *bufio.Scanner, w io.Writer, resize chan sandbox.WindowSize) error {
	for {
		var in client.ExecInput
		if err := scanLine(sc, &in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if in.Resize != nil && resize != nil && in.Resize.Rows > 0 && in.Resize.Cols > 0 {
			// Only the latest size matters: replace one not yet taken.
			ws := sandbox.WindowSize{Rows: in.Resize.Rows, Cols: in.Resize.Cols}
			select {
			case <-resize:
			default:
			}
			resize <- ws
		}
		if len(in.Stdin) > 0 {
			if _, err := w.Write(in.Stdin); err != nil {
				return err
			}
		}
		if in.EOF {
			return nil
		}
	}
}

func notRunning(sb *store.Sandbox) *Error {
	return newError(http.StatusConflict, CodeNotRunning,
		"sandbox %q is not running (state %s); create it again on a server with a sandbox runtime", sb.Name, sb.State)
}

// eventWriter writes events from the command's two output streams, which
// arrive from different goroutines, one whole line at a time, flushed.
type eventWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
	rc  *http.ResponseController
}

func (ew *eventWriter) write(ev client.ExecEvent) error {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	if err := ew.enc.Encode(ev); err != nil {
		return err
	}
	if err := ew.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (ew *eventWriter) stream(name string) streamWriter { return streamWriter{ew, name} }

type streamWriter struct {
	ew   *eventWriter
	name string
}

func (sw streamWriter) Write(p []byte) (int, error) {
	if err := sw.ew.write(client.ExecEvent{Stream: sw.name, Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}
