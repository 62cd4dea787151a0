package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox/netns"
)

// TestSandboxFilesAndTimeout copies files into and out of a real sandbox,
// then lets a sandbox's timeout stop it.
func TestSandboxFilesAndTimeout(t *testing.T) {
	cfg := sandboxConfig(t)
	c := startServer(t, cfg)
	ctx := context.Background()

	if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "files"}); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	// Every byte value, and more than one chunk of output.
	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i ^ i>>8)
	}
	if err := c.PutFile(ctx, "files", "/tmp/data.bin", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	if got := execIn(t, c, "files", client.ExecRequest{Args: []string{"wc", "-c", "/tmp/data.bin"}}); got.Stdout != "204800 /tmp/data.bin\n" {
		t.Errorf("wc -c in the sandbox = %+v, want 204800 bytes", got)
	}
	var back bytes.Buffer
	if n, err := c.GetFile(ctx, "files", "/tmp/data.bin", &back); err != nil || !bytes.Equal(back.Bytes(), data) {
		t.Errorf("GetFile = %d bytes, %v; want the %d bytes put", n, err, len(data))
	}

	tests := []struct {
		name, op, path string
		status         int
	}{
		{"missing directory", "put", "/nonexistent/x", http.StatusNotFound},
		{"read-only file system", "put", "/proc/version", http.StatusForbidden},
		{"a directory", "put", "/tmp", http.StatusConflict},
		{"missing file", "get", "/tmp/nope", http.StatusNotFound},
		{"get a directory", "get", "/tmp", http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.op == "put" {
				err = c.PutFile(ctx, "files", tt.path, bytes.NewReader([]byte("x")), 1)
			} else {
				_, err = c.GetFile(ctx, "files", tt.path, io.Discard)
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tt.status {
				t.Errorf("%s file %q = %v, want status %d", tt.op, tt.path, err, tt.status)
			}
		})
	}

	sb, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "short", Timeout: "2s"})
	if err != nil {
		t.Fatalf("CreateSandbox(timeout 2s): %v", err)
	}
	if sb.State != "running" || sb.ExpiresAt == nil {
		t.Fatalf("CreateSandbox(timeout 2s) = state %q, expiresAt %v; want running with a time", sb.State, sb.ExpiresAt)
	}
	// The bound only keeps a broken timeout from hanging the test.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err := c.GetSandbox(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox state = %q a minute after its 2s timeout, want expired", got.State)
		}
	}
	if names, err := netns.List(nsName(sb.ID)); err != nil || len(names) != 0 {
		t.Errorf("network namespaces after expiry = %q, %v; want none", names, err)
	}
	_, err = c.Exec(ctx, "short", client.ExecRequest{Args: []string{"true"}}, nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("Exec in an expired sandbox = %v, want 409", err)
	}
	if err := c.DeleteSandbox(ctx, "short"); err != nil {
		t.Errorf("DeleteSandbox of an expired sandbox: %v", err)
	}
}
