package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/testutil"
)

// These tests run real sandboxes: they need root and bin/runsc (`make
// runsc`, which `make test` runs). CI runs as root.

// corpUpstream is a fake provider at api.corp.test on loopback that records
// the Authorization header of each request and echoes it back.
type corpUpstream struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	auths  []string
}

func newCorpUpstream(tb testing.TB) *corpUpstream {
	tb.Helper()
	u := &corpUpstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auths = append(u.auths, r.Header.Get("Authorization"))
		u.mu.Unlock()
		io.WriteString(w, "seen: "+r.Header.Get("Authorization")+"\n")
	}))
	ca, cert := testutil.UpstreamCert(tb, []string{"api.corp.test"})
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	u.srv.StartTLS()
	tb.Cleanup(u.srv.Close)
	u.caFile = testutil.WriteCA(tb, ca)
	return u
}

func (u *corpUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.auths)
}

// visibleDataDir makes a data directory outside /tmp (which is empty in
// every sandbox anyway), so that hiding it is what the test sees.
func visibleDataDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/var/cache", "standin-server-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// sandboxConfig is the config of a server that runs real sandboxes under
// runsc: data directory outside /tmp, no TCP listeners, and a gateway that
// can dial nothing but loopback. It fails the test unless it runs as root.
func sandboxConfig(tb testing.TB) Config {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test runs sandboxes, which needs root; CI runs as root")
	}
	cfg := DefaultConfig()
	cfg.DataDir = visibleDataDir(tb)
	cfg.Listen = "off"
	cfg.Gateway.Listen = "off"
	cfg.Gateway.DialGuard = []string{"127.0.0.0/8"}
	cfg.RunscPath = testutil.RunscBin(tb)
	return cfg
}

// startServer runs a server with runtime gvisor and returns an SDK client
// on its socket; the server stops when the test ends.
func startServer(tb testing.TB, cfg Config) *client.Client {
	tb.Helper()
	c, stop := startServerStop(tb, cfg)
	tb.Cleanup(stop)
	return c
}

// startServerStop is startServer with a stop function, which may be called
// more than once.
func startServerStop(tb testing.TB, cfg Config) (*client.Client, func()) {
	tb.Helper()
	return startServerHook(tb, cfg, nil)
}

// startServerHook is startServerStop that calls onRunner with the runner.
func startServerHook(tb testing.TB, cfg Config, onRunner func(*runner)) (*client.Client, func()) {
	tb.Helper()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	s := &Server{Config: cfg, Logger: slog.New(slog.DiscardHandler), Ready: func(a Addrs) { ready <- a }, onRunner: onRunner}
	go func() { done <- s.Run(ctx) }()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		tb.Fatalf("server did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		tb.Fatal("server did not start within 60s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() { stopServer(tb, cfg, cancel, done) })
	}
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, TokenFile))
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	return client.New("http://standin", strings.TrimSpace(string(tok)), client.WithUnixSocket(addrs.Socket)), stop
}

// stopServer stops a server and checks it removed runsc's state.
func stopServer(tb testing.TB, cfg Config, cancel context.CancelFunc, done <-chan error) {
	tb.Helper()
	cancel()
	if err := <-done; err != nil {
		tb.Errorf("server Run: %v", err)
	}
	if _, err := os.Stat(runtimeStateDir(cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("runtime state dir after the server stopped: stat = %v, want not exist", err)
		os.RemoveAll(runtimeStateDir(cfg.DataDir))
	}
}

type execResult struct {
	Stdout, Stderr string
	Exit           int
}

func execIn(tb testing.TB, c *client.Client, name string, req client.ExecRequest) execResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code, err := c.Exec(ctx, name, req, &stdout, &stderr)
	if err != nil {
		tb.Fatalf("Exec(%q): %v", req.Args, err)
	}
	return execResult{stdout.String(), stderr.String(), code}
}

// TestSandboxEndToEnd runs a real sandbox through the API: its command sees
// the stand-in, curl's request reaches the fake provider with the real
// value (swapped by the gateway on the transparent path, no proxy
// settings), the data directory is hidden, a detach applies to the very
// next request, and a delete leaves no namespace and no runsc process.
// It runs with each runtime that runs sandboxes.
func TestSandboxEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs sandboxes, which needs root; CI runs as root")
	}
	for _, rt := range []string{RuntimeGVisor, RuntimeNamespaces} {
		t.Run(rt, func(t *testing.T) { testSandboxEndToEnd(t, rt) })
	}
}

func testSandboxEndToEnd(t *testing.T, runtime string) {
	up := newCorpUpstream(t)
	cfg := sandboxConfig(t)
	cfg.Runtime = runtime
	cfg.Gateway.Hosts = map[string]string{"api.corp.test": up.srv.Listener.Addr().String()}
	cfg.Gateway.UpstreamCAFile = up.caFile
	c := startServer(t, cfg)
	ctx := context.Background()

	const real = "corp-REALVALUE-0123456789abcdef"
	if _, err := c.CreateSecret(ctx, client.SecretCreate{Name: "corp", Value: real, Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotBearer}}}}); err != nil {
		t.Fatal(err)
	}
	sb, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb", Secrets: map[string]string{"CORP_KEY": "corp"},
		Network: client.NetworkRules{AllowOut: []string{"api.corp.test"}, DenyOut: []string{"0.0.0.0/0", "::/0"}}})
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	if sb.State != "running" || len(sb.Bindings) != 1 {
		t.Fatalf("CreateSandbox = state %q, %d bindings; want running with 1", sb.State, len(sb.Bindings))
	}
	standIn := sb.Bindings[0].StandIn

	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"printenv", "CORP_KEY"}}); got != (execResult{Stdout: standIn + "\n"}) {
		t.Errorf("printenv CORP_KEY = %+v, want the stand-in, exit 0", got)
	}
	curl := client.ExecRequest{Args: []string{"curl", "-sS", "--max-time", "20",
		"-H", "Authorization: Bearer " + standIn, "https://api.corp.test/v1/things"}}
	got := execIn(t, c, "sb", curl)
	if got.Exit != 0 || got.Stdout != "seen: Bearer "+standIn+"\n" {
		t.Errorf("curl = %+v, want the echo with the stand-in in place of the value, exit 0", got)
	}
	if strings.Contains(got.Stdout+got.Stderr, real) {
		t.Error("real value reached the sandbox")
	}
	if auths := up.seen(); !slices.Equal(auths, []string{"Bearer " + real}) {
		t.Errorf("upstream got %d requests; want one with the real value in Authorization", len(auths))
	}

	// The rules hold inside: a name they do not allow does not even
	// resolve (no DNS side channel), an address literal is refused.
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"getent", "hosts", "evil.example"}}); got.Exit == 0 {
		t.Errorf("getent hosts evil.example = %+v, want no answer", got)
	}
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"getent", "hosts", "api.corp.test"}}); got.Exit != 0 {
		t.Errorf("getent hosts api.corp.test = %+v, want an answer", got)
	}
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"curl", "-sS", "--max-time", "10", "-k", "https://203.0.113.9/"}}); got.Exit == 0 {
		t.Errorf("curl to an address literal outside the rules = %+v, want failure", got)
	}

	// stdin reaches the command.
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"cat"}, Stdin: []byte("in\n")}); got != (execResult{Stdout: "in\n"}) {
		t.Errorf("cat with stdin = %+v, want %q", got, "in\n")
	}

	// The data directory is there but empty; its parent is visible.
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"ls", "-A", cfg.DataDir}}); got.Stdout != "" {
		t.Errorf("ls -A %s in the sandbox = %+v, want no entries", cfg.DataDir, got)
	}
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"ls", "-A", filepath.Dir(cfg.DataDir)}}); !strings.Contains(got.Stdout, filepath.Base(cfg.DataDir)) {
		t.Errorf("ls -A %s in the sandbox = %+v, want it to list %s (control)", filepath.Dir(cfg.DataDir), got, filepath.Base(cfg.DataDir))
	}

	// Detach: gone from the next command's environment, and the old
	// stand-in is refused by the gateway.
	if err := c.Detach(ctx, "sb", "CORP_KEY"); err != nil {
		t.Fatal(err)
	}
	if got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"printenv", "CORP_KEY"}}); got.Exit != 1 || got.Stdout != "" {
		t.Errorf("printenv CORP_KEY after detach = %+v, want nothing, exit 1", got)
	}
	curl.Args = append(curl.Args, "-w", "\n%{http_code}")
	got = execIn(t, c, "sb", curl)
	if !strings.Contains(got.Stdout, "secret_revoked") || !strings.HasSuffix(got.Stdout, "\n403") {
		t.Errorf("curl after detach = %+v, want 403 secret_revoked", got)
	}
	if n := len(up.seen()); n != 1 {
		t.Errorf("upstream got %d requests after the detach, want still 1", n)
	}

	if err := c.DeleteSandbox(ctx, "sb"); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	names, err := netns.List(nsName(sb.ID))
	if err != nil || len(names) != 0 {
		t.Errorf("network namespaces after delete = %q, %v; want none", names, err)
	}
	if procs := testutil.RunscProcs(t, runtimeStateDir(cfg.DataDir)); len(procs) != 0 {
		t.Errorf("runsc processes after delete:\n%s", strings.Join(procs, "\n"))
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "sandboxes", sb.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sandbox files after delete: stat = %v, want not exist", err)
	}
	_, err = c.Exec(ctx, "sb", client.ExecRequest{Args: []string{"true"}}, nil, nil)
	if !client.IsNotFound(err) {
		t.Errorf("Exec after delete = %v, want not_found", err)
	}
}

// TestShutdownStopsSandboxes: a server that stops stops its sandboxes
// (no namespace, no runsc process left); their records stay, "stopped",
// and the next server refuses exec on them rather than adopting them.
func TestShutdownStopsSandboxes(t *testing.T) {
	cfg := sandboxConfig(t)
	c, stop := startServerStop(t, cfg)
	ctx := context.Background()
	sb, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"})
	if err != nil {
		stop()
		t.Fatalf("CreateSandbox: %v", err)
	}
	stop()
	if names, err := netns.List(nsName(sb.ID)); err != nil || len(names) != 0 {
		t.Errorf("network namespaces after shutdown = %q, %v; want none", names, err)
	}
	if procs := testutil.RunscProcs(t, runtimeStateDir(cfg.DataDir)); len(procs) != 0 {
		t.Errorf("runsc processes after shutdown:\n%s", strings.Join(procs, "\n"))
	}

	c = startServer(t, cfg)
	got, err := c.GetSandbox(ctx, "sb")
	if err != nil || got.State != stateStopped {
		t.Errorf("GetSandbox after restart = state %q, %v; want %q", got.State, err, stateStopped)
	}
	_, err = c.Exec(ctx, "sb", client.ExecRequest{Args: []string{"true"}}, nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("Exec on a stopped sandbox = %v, want 409", err)
	}
	if err := c.DeleteSandbox(ctx, "sb"); err != nil {
		t.Errorf("DeleteSandbox of a stopped sandbox: %v", err)
	}
}

// TestMaxFlows: the config's maxFlows reaches each sandbox's network
// stack. A sandbox that holds connections open (connected, sending
// nothing: the gateway waits for their first bytes) gets that many and
// then ECONNREFUSED. Nothing is dialed upstream: no connection sends a
// byte.
func TestMaxFlows(t *testing.T) {
	cfg := sandboxConfig(t)
	cfg.MaxFlows = 4
	c := startServer(t, cfg)
	ctx := context.Background()
	if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"}); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	prog := `
import socket
held, refused = [], 0
for i in range(7):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("192.0.2.1", 443))
        held.append(s)
    except ConnectionRefusedError:
        refused += 1
print(len(held), refused)
`
	got := execIn(t, c, "sb", client.ExecRequest{Args: []string{"python3", "-c", prog}})
	if got.Exit != 0 || strings.TrimSpace(got.Stdout) != "4 3" {
		t.Errorf("7 connections held open with maxFlows 4: exit %d, %q (stderr %q); want 4 held, 3 refused", got.Exit, got.Stdout, got.Stderr)
	}
}
