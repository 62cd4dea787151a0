package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/store"
)

// MaxFileSize bounds a file copied into or out of a sandbox.
const MaxFileSize = 64 << 20

// maxPath bounds the path of a file in a sandbox (Linux's PATH_MAX).
const maxPath = 4096

// CodeFileFailed is the code of a file copy the sandbox refused for a reason
// other than a missing file (permissions, a read-only file system, a
// directory in the way).
const CodeFileFailed = "file_failed"

// Files go through exec in the sandbox, the one way into it: its file
// system may live only in the runtime's memory. tee and cat report errors
// with strerror texts, which fileError maps; dash's own "Directory
// nonexistent" is matched too in case a shell reports the open.
var (
	putFileArgs = []string{"sh", "-c", `exec tee -- "$1" >/dev/null`, "sh"}
	getFileArgs = []string{"sh", "-c", `if [ -d "$1" ]; then echo "$1: Is a directory" >&2; exit 1; fi; exec cat -- "$1"`, "sh"}
)

// maxFile is the file size limit: MaxFileSize, smaller in tests.
func (s *Server) maxFile() int64 {
	if s.maxFileSize > 0 {
		return s.maxFileSize
	}
	return MaxFileSize
}

// filePath is the ?path= of a files request.
func filePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	// The path is not echoed in errors: like any field, it may be a pasted
	// credential.
	if p == "" || p[0] != '/' || strings.ContainsRune(p, 0) || len(p) > maxPath {
		return "", badRequest(CodeInvalidQuery, "path must be an absolute path in the sandbox, such as /tmp/data.bin")
	}
	if strings.HasSuffix(p, "/") {
		return "", badRequest(CodeInvalidQuery, "path must name a file, not a directory")
	}
	return p, nil
}

// runningSandbox loads the sandbox named in the path and checks it runs.
func (s *Server) runningSandbox(r *http.Request) (*store.Sandbox, error) {
	sb, err := s.sandboxByName(r, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	if s.Sandboxes == nil || !s.Sandboxes.Running(sb.ID) {
		return nil, notRunning(sb)
	}
	return sb, nil
}

// fileError maps a failed copy's exit and stderr to an API error.
func (s *Server) fileError(r *http.Request, sb *store.Sandbox, code int, stderr string, err error) error {
	switch {
	case errors.Is(err, ErrNotRunning):
		return notRunning(sb)
	case err != nil:
		return fmt.Errorf("copy file in sandbox %q: %w", sb.Name, err)
	}
	for _, m := range []struct {
		text   string
		status int
		code   string
		msg    string
	}{
		{"No such file or directory", http.StatusNotFound, CodeNotFound, "no such file or directory"},
		{"Directory nonexistent", http.StatusNotFound, CodeNotFound, "no such file or directory"},
		{"Not a directory", http.StatusNotFound, CodeNotFound, "a parent of the path is not a directory"},
		{"Is a directory", http.StatusConflict, CodeFileFailed, "the path is a directory"},
		{"Read-only file system", http.StatusForbidden, CodeFileFailed, "the file system is read-only"},
		{"Permission denied", http.StatusForbidden, CodeFileFailed, "permission denied"},
		{"Operation not permitted", http.StatusForbidden, CodeFileFailed, "operation not permitted"},
		{"No space left on device", http.StatusInsufficientStorage, CodeFileFailed, "no space left on the device"},
	} {
		if strings.Contains(stderr, m.text) {
			return newError(m.status, m.code, "sandbox %q: %s", sb.Name, m.msg)
		}
	}
	id := requestID(r)
	// The log gets the exit status only: stderr names the path.
	s.logger().LogAttrs(r.Context(), slog.LevelError, "file copy failed",
		slog.String(logKeyRequestID, id), slog.String(logKeySandboxID, sb.ID), slog.Int("exit_code", code))
	return newError(http.StatusUnprocessableEntity, CodeFileFailed,
		"sandbox %q: the copy failed (exit status %d); the server log has the detail under request id %s", sb.Name, code, id)
}

// putFile answers PUT /v1/sandboxes/{name}/files?path=P: the body becomes
// the file P in the sandbox (created or truncated).
func (s *Server) putFile(w http.ResponseWriter, r *http.Request) error {
	p, err := filePath(r)
	if err != nil {
		return err
	}
	if r.ContentLength > s.maxFile() {
		return s.tooLargeFile()
	}
	sb, err := s.runningSandbox(r)
	if err != nil {
		return err
	}
	body := &recordingReader{r: http.MaxBytesReader(w, r.Body, s.maxFile())}
	var stderr bytes.Buffer
	code, err := s.Sandboxes.Exec(r.Context(), sb.ID, sandbox.ExecSpec{
		Args: append(putFileArgs[:len(putFileArgs):len(putFileArgs)], p), Dir: "/",
		Stdin: body, Stderr: &limitedBuffer{b: &stderr, n: 4096},
	})
	if rerr := body.Err(); err == nil && code == 0 && rerr != nil {
		// The command saw an early end of input: the file is cut short.
		// Remove it rather than leave a partial copy.
		rm := append([]string{"rm", "-f", "--"}, p)
		if _, rerr := s.Sandboxes.Exec(context.WithoutCancel(r.Context()), sb.ID, sandbox.ExecSpec{Args: rm, Dir: "/"}); rerr != nil {
			s.logger().LogAttrs(r.Context(), slog.LevelError, "remove partial file",
				slog.String(logKeyRequestID, requestID(r)), slog.Any(logKeyError, rerr))
		}
		var mbe *http.MaxBytesError
		if errors.As(rerr, &mbe) {
			return s.tooLargeFile()
		}
		return badRequest(CodeInvalidValue, "the request body could not be read to its end; nothing was written")
	}
	if err != nil || code != 0 {
		return s.fileError(r, sb, code, stderr.String(), err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) tooLargeFile() error {
	return newError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "the file is larger than %d bytes", s.maxFile())
}

// getFile answers GET /v1/sandboxes/{name}/files?path=P with the bytes of
// the file P in the sandbox. The status is sent with the first byte of the
// file (or at the end), so a file that cannot be read gets an error status;
// a read that fails midway cuts the response short.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) error {
	p, err := filePath(r)
	if err != nil {
		return err
	}
	sb, err := s.runningSandbox(r)
	if err != nil {
		return err
	}
	out := &fileWriter{w: w, max: s.maxFile()}
	var stderr bytes.Buffer
	code, err := s.Sandboxes.Exec(r.Context(), sb.ID, sandbox.ExecSpec{
		Args: append(getFileArgs[:len(getFileArgs):len(getFileArgs)], p), Dir: "/",
		Stdout: out, Stderr: &limitedBuffer{b: &stderr, n: 4096},
	})
	if out.tooLarge {
		if !out.started {
			return s.tooLargeFile()
		}
		panic(http.ErrAbortHandler)
	}
	if err != nil || code != 0 {
		if out.started {
			panic(http.ErrAbortHandler) // the client sees a truncated body
		}
		return s.fileError(r, sb, code, stderr.String(), err)
	}
	out.start()
	return nil
}

// fileWriter sends the response headers with the first bytes of the file.
type fileWriter struct {
	w        http.ResponseWriter
	n, max   int64
	started  bool
	tooLarge bool
}

func (f *fileWriter) start() {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "application/octet-stream")
		f.w.WriteHeader(http.StatusOK)
	}
}

func (f *fileWriter) Write(p []byte) (int, error) {
	if f.n+int64(len(p)) > f.max {
		f.tooLarge = true
		return 0, errors.New("file larger than " + strconv.FormatInt(f.max, 10) + " bytes")
	}
	f.start()
	f.n += int64(len(p))
	return f.w.Write(p)
}

// recordingReader keeps the first error other than io.EOF its reader gave.
// The runtime reads it from its own goroutine.
type recordingReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF {
		rr.mu.Lock()
		if rr.err == nil {
			rr.err = err
		}
		rr.mu.Unlock()
	}
	return n, err
}

func (rr *recordingReader) Err() error {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.err
}

// limitedBuffer keeps the first n bytes written and discards the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
