package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/store"
)

// fileRunner is a sandbox with an in-memory file system: /ro is read-only,
// files live under /tmp, everything else has no parent directory.
type fileRunner struct {
	fakeRunner
	mu    sync.Mutex
	files map[string][]byte
}

func (f *fileRunner) Start(ctx context.Context, sb *store.Sandbox) error {
	f.files = map[string][]byte{}
	return f.fakeRunner.Start(ctx, sb)
}

func (f *fileRunner) Exec(ctx context.Context, id string, spec sandbox.ExecSpec) (int, error) {
	if !f.Running(id) {
		return 0, ErrNotRunning
	}
	p := spec.Args[len(spec.Args)-1]
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(msg string) (int, error) {
		io.WriteString(spec.Stderr, "tee: "+p+": "+msg+"\n")
		return 1, nil
	}
	switch {
	case strings.Join(spec.Args[:len(spec.Args)-1], " ") == strings.Join(putFileArgs, " "):
		if strings.HasPrefix(p, "/ro/") {
			return fail("Read-only file system")
		}
		if !strings.HasPrefix(p, "/tmp/") {
			return fail("No such file or directory")
		}
		b, _ := io.ReadAll(spec.Stdin)
		f.files[p] = b
		return 0, nil
	case strings.Join(spec.Args[:len(spec.Args)-1], " ") == strings.Join(getFileArgs, " "):
		b, ok := f.files[p]
		if !ok {
			return fail("No such file or directory")
		}
		spec.Stdout.Write(b)
		return 0, nil
	case spec.Args[0] == "rm":
		delete(f.files, p)
		return 0, nil
	}
	return 127, nil
}

func TestFiles(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	if _, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "records-only"}); err != nil {
		t.Fatal(err)
	}
	var ae *client.APIError
	if err := env.client.PutFile(ctx, "records-only", "/tmp/x", strings.NewReader("x"), 1); !errors.As(err, &ae) || ae.Code != CodeNotRunning {
		t.Errorf("PutFile without a runtime = %v, want %s", err, CodeNotRunning)
	}

	fr := &fileRunner{}
	env.server.Sandboxes = fr
	if _, err := env.client.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := env.client.PutFile(ctx, "sb", "/tmp/data.bin", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	var got bytes.Buffer
	if n, err := env.client.GetFile(ctx, "sb", "/tmp/data.bin", &got); err != nil || n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
		t.Errorf("GetFile = %d bytes, %v; want the %d bytes put", n, err, len(data))
	}
	// An empty file, sent with an unknown length.
	if err := env.client.PutFile(ctx, "sb", "/tmp/empty", strings.NewReader(""), -1); err != nil {
		t.Fatalf("PutFile(empty): %v", err)
	}
	if n, err := env.client.GetFile(ctx, "sb", "/tmp/empty", io.Discard); err != nil || n != 0 {
		t.Errorf("GetFile(empty) = %d, %v; want 0, nil", n, err)
	}

	tests := []struct {
		name, op, path string
		status         int
		code           string
	}{
		{"relative path", "put", "tmp/x", http.StatusBadRequest, CodeInvalidQuery},
		{"empty path", "get", "", http.StatusBadRequest, CodeInvalidQuery},
		{"directory path", "put", "/tmp/", http.StatusBadRequest, CodeInvalidQuery},
		{"read-only", "put", "/ro/x", http.StatusForbidden, CodeFileFailed},
		{"missing parent", "put", "/nope/x", http.StatusNotFound, CodeNotFound},
		{"missing file", "get", "/tmp/missing", http.StatusNotFound, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.op == "put" {
				err = env.client.PutFile(ctx, "sb", tt.path, strings.NewReader("x"), 1)
			} else {
				_, err = env.client.GetFile(ctx, "sb", tt.path, io.Discard)
			}
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code {
				t.Fatalf("%s file %q = %v, want %d %s", tt.op, tt.path, err, tt.status, tt.code)
			}
			if tt.path != "" && strings.Contains(ae.Message, tt.path) {
				t.Errorf("%s file %q: message %q echoes the path", tt.op, tt.path, ae.Message)
			}
		})
	}

	// Too large: refused by its length up front, or when the body runs
	// over; no partial file is left.
	env.server.maxFileSize = 1 << 20
	if err := env.client.PutFile(ctx, "sb", "/tmp/big", io.LimitReader(zeros{}, 1<<20+1), 1<<20+1); !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("PutFile with a too large length = %v, want 413", err)
	}
	if err := env.client.PutFile(ctx, "sb", "/tmp/big", io.LimitReader(zeros{}, 1<<20+1), -1); !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("PutFile with a too large body = %v, want 413", err)
	}
	if _, err := env.client.GetFile(ctx, "sb", "/tmp/big", io.Discard); !client.IsNotFound(err) {
		t.Errorf("GetFile after a too large put = %v, want not_found (no partial file)", err)
	}
	if err := env.client.PutFile(ctx, "sb", "/tmp/big", io.LimitReader(zeros{}, 1<<20), -1); err != nil {
		t.Fatalf("PutFile at the limit: %v", err)
	}
	env.server.maxFileSize = 1<<20 - 1
	if _, err := env.client.GetFile(ctx, "sb", "/tmp/big", io.Discard); !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("GetFile of a too large file = %v, want 413", err)
	}
	if _, err := env.client.GetFile(ctx, "nope", "/tmp/x", io.Discard); !client.IsNotFound(err) {
		t.Errorf("GetFile in a missing sandbox = %v, want not_found", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
