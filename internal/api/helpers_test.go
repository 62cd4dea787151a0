package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
	"github.com/standin/standin/internal/vault"
)

const testToken = "test-admin-token-0123456789abcdef"

// testEnv is a running API on loopback with a real SQLite store, keyring
// and minter, all under one temp dir.
type testEnv struct {
	dir    string
	store  *store.SQLite
	minter *standin.Minter
	server *Server
	http   *httptest.Server
	client *client.Client
	logs   *testutil.SyncBuffer
	// responses holds every response's status line, headers and body.
	responses *testutil.SyncBuffer
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	dir := tb.TempDir()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "standin.db"))
	if err != nil {
		tb.Fatalf("OpenSQLite: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	kr, err := vault.LoadKeyring(dir, "")
	if err != nil {
		tb.Fatalf("LoadKeyring: %v", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	m, err := standin.NewMinter(key)
	if err != nil {
		tb.Fatalf("NewMinter: %v", err)
	}
	logs := &testutil.SyncBuffer{}
	srv := &Server{
		Store:  st,
		Vault:  vault.New(kr, nil),
		Minter: m,
		Token:  testToken,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	responses := &testutil.SyncBuffer{}
	hs := httptest.NewServer(recordResponses(srv.Handler(), responses))
	tb.Cleanup(hs.Close)
	return &testEnv{
		dir: dir, store: st, minter: m, server: srv, http: hs,
		client: client.New(hs.URL, testToken), logs: logs, responses: responses,
	}
}

// recordResponses tees every response (status, headers, body) into buf.
func recordResponses(h http.Handler, buf *testutil.SyncBuffer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		var b bytes.Buffer
		// Not the path or a raw method: tests put values there on purpose, and this
		// buffer should show only what the server sent.
		fmt.Fprintf(&b, "%s -> %d\n", safeMethod(r.Method), rec.status)
		w.Header().Write(&b)
		b.Write(rec.body.Bytes())
		b.WriteString("\n")
		buf.Write(b.Bytes())
	})
}

type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *teeWriter) WriteHeader(code int) {
	if t.status == 0 {
		t.status = code
	}
	t.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// full duplex).
func (t *teeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	t.body.Write(p)
	return t.ResponseWriter.Write(p)
}

// rawResponse is one raw HTTP exchange's result.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server said Connection: close
}

// do sends a raw request with the test token (unless token is "-").
func (e *testEnv) do(tb testing.TB, method, path, body string, hdr ...string) rawResponse {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		tb.Fatalf("NewRequest(%s %s): %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}
}

// Values shaped like real keys, with a canary inside so a leak is easy to
// spot. They are not real credentials.
var (
	anthropicCanary = "sk-ant-api03-" + "LEAKCANARY" + strings.Repeat("Qx7_", 20) + "abc" + "AA"
	githubCanary    = "ghp_" + "LEAKCANARY" + "x9Qm2Lp7Rk4Tz8Vb1Nc6Wd3Hf5"
	customCanary    = "cust_LEAKCANARY_Zq9xY8wV7uT6sR5qP4oN3mL2"
)

var customHosts = []client.HostAuth{{
	Host: "api.example.com",
	Auth: client.AuthSlot{Type: client.SlotHeader, Header: "X-Api-Key", Template: "{value}"},
}}
