// Package e2e tests standin end to end, as a user runs it: it builds the
// standin binary, starts `standin serve` with a config file (the way the
// README says, plus test-only routing) and works only through the CLI and
// the API, with real clients running inside real gVisor sandboxes.
//
// Nothing here sends a packet off the machine, even if a defence is broken:
// the server runs with its upstream dial guard at 127.0.0.0/8, every
// provider name is routed to a local fake (gateway.hosts), and every other
// upstream lookup goes to this package's own DNS server on loopback
// (gateway.resolver), which knows only the rebinding names.
//
// It needs root and bin/runsc (`make test` builds it), like CI.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/standin/standin/client"
)

// srv is the one server every test of the package uses. Tests name their
// secrets and sandboxes after themselves (uniq), so they do not collide.
var srv *server

// repoRoot is the repository's top directory, seen read-only inside every
// sandbox (the host's root filesystem is), so scripts under e2e/ run there
// as they are.
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests run real sandboxes and need root (CI runs them as root)")
		return 1
	}
	var err error
	if repoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "standin-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	srv, err = startServer(tmp)
	if err != nil {
		if srv != nil {
			os.RemoveAll(srv.dataDir)
		}
		fmt.Fprintln(os.Stderr, "e2e: start standin:", err)
		return 1
	}
	code = m.Run()
	if err := srv.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop standin:", err)
		code = 1
	}
	// Whatever the tests did, no real value may be in the server's log or
	// anywhere in its data directory.
	if leaks := srv.leaks(); len(leaks) > 0 {
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "e2e: LEAK:", l)
		}
		code = 1
	}
	if !printAttackSummary(os.Stdout) {
		code = 1
	}
	return code
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "runsc", "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "bin", "runsc")); err != nil {
				return "", fmt.Errorf("%s is missing: run `make runsc` (or `make test`, which builds it)", filepath.Join(dir, "bin", "runsc"))
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (with tools/runsc) not found above the working directory")
		}
		dir = parent
	}
}

// server is a running `standin serve` process.
type server struct {
	bin     string // the standin binary
	dataDir string
	logPath string
	cmd     *exec.Cmd
	exited  chan error
	api     *client.Client
	up      *upstream
	dns     *rebindDNS

	idsMu sync.Mutex
	ids   []string // of every sandbox created
}

func (s *server) sandboxIDs() []string {
	s.idsMu.Lock()
	defer s.idsMu.Unlock()
	return slices.Clone(s.ids)
}

func startServer(tmp string) (s *server, err error) {
	s = &server{bin: filepath.Join(tmp, "standin"), exited: make(chan error, 1)}
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/standin")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/standin: %v\n%s", err, out)
	}
	// Outside /tmp, which every sandbox has its own of: the data directory
	// must be hidden from sandboxes by standin, not by accident.
	if s.dataDir, err = os.MkdirTemp("/var/cache", "standin-e2e-data-"); err != nil {
		return nil, err
	}
	if s.up, err = startUpstream(tmp); err != nil {
		return nil, err
	}
	if s.dns, err = startRebindDNS(); err != nil {
		return nil, err
	}
	hosts := map[string]string{}
	for _, name := range s.up.names() {
		hosts[name] = s.up.addr
	}
	apiPort, proxyPort, err := freePort(), freePort(), error(nil)
	cfg := map[string]any{
		"version":   1,
		"dataDir":   s.dataDir,
		"listen":    fmt.Sprintf("127.0.0.1:%d", apiPort),
		"log":       map[string]string{"format": "json", "level": "debug"},
		"runtime":   "gvisor",
		"runscPath": filepath.Join(repoRoot, "bin", "runsc"),
		"gateway": map[string]any{
			"listen":         fmt.Sprintf("127.0.0.1:%d", proxyPort),
			"hosts":          hosts,
			"dialGuard":      []string{"127.0.0.0/8"},
			"upstreamCAFile": s.up.caFile,
			"resolver":       s.dns.addr,
		},
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(tmp, "standin.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return nil, err
	}
	s.logPath = filepath.Join(tmp, "server.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(s.bin, "serve", "--config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = append(os.Environ(), "STANDIN_DATA_DIR="+s.dataDir)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait(); logf.Close() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		tok, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
		if err == nil {
			s.api = client.New(fmt.Sprintf("http://127.0.0.1:%d", apiPort), strings.TrimSpace(string(tok)))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = s.api.ListSandboxes(ctx)
			cancel()
			if err == nil {
				return s, nil
			}
		}
		select {
		case werr := <-s.exited:
			log, _ := os.ReadFile(s.logPath)
			return nil, fmt.Errorf("standin serve exited: %v\n%s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			log, _ := os.ReadFile(s.logPath)
			return nil, fmt.Errorf("standin serve not ready after 60s: %v\n%s", err, log)
		}
	}
}

// stop ends the server with SIGTERM, as a service manager would, and
// checks that it left no sandbox behind.
func (s *server) stop() error {
	defer os.RemoveAll(s.dataDir)
	defer s.up.close()
	defer s.dns.close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("standin serve: %v\n%s", err, tail(log, 4000))
		}
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		return errors.New("standin serve still running 60s after SIGTERM")
	}
	// Other packages' tests may run servers at the same time: look only for
	// the namespaces of this server's sandboxes.
	out, _ := exec.Command("ip", "netns", "list").Output()
	var left []string
	for _, id := range s.sandboxIDs() {
		if ns := "stn-" + strings.TrimPrefix(id, "sbx_"); bytes.Contains(out, []byte(ns)) {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("network namespaces left behind: %s", strings.Join(left, " "))
	}
	return nil
}

// leaks lists every place a real value of this run shows up in the server's
// log or data directory (raw, hex or base64).
func (s *server) leaks() []string {
	var found []string
	check := func(where string, data []byte) {
		for _, v := range allRealValues() {
			for _, form := range valueForms(v) {
				if bytes.Contains(data, []byte(form)) {
					found = append(found, fmt.Sprintf("a real value (%d bytes) in %s", len(v), where))
				}
			}
		}
	}
	if log, err := os.ReadFile(s.logPath); err == nil {
		check("the server log", log)
	}
	filepath.WalkDir(s.dataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, err := os.ReadFile(path); err == nil {
				check(path, data)
			}
		}
		return nil
	})
	return found
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Real values. Every real credential a test stores is made by realValue, so
// that the final leak check knows them all.
var (
	realMu     sync.Mutex
	realValues []string
)

// realValue returns a fresh random credential that starts with prefix (a
// provider's real shape where the fake checks it) and records it for the
// leak check.
func realValue(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	v := prefix + hex.EncodeToString(b)[:n]
	realMu.Lock()
	realValues = append(realValues, v)
	realMu.Unlock()
	return v
}

func allRealValues() []string {
	realMu.Lock()
	defer realMu.Unlock()
	return slices.Clone(realValues)
}

// uniq makes a name for a test's secret or sandbox: letters, digits and
// '-', unique in the run.
func uniq(t testing.TB, what string) string {
	t.Helper()
	name := strings.ToLower(t.Name())
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	b := make([]byte, 3)
	rand.Read(b)
	return strings.Trim(what+"-"+name, "-") + "-" + hex.EncodeToString(b)
}

// result is what a CLI command did.
type result struct {
	Stdout, Stderr string
	Code           int
}

// cli runs `standin ARGS...` with stdin as its input, the way a user on the
// server's machine does (it finds the socket and token in the data
// directory).
func cli(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, srv.bin, args...)
	cmd.Env = append(os.Environ(), "STANDIN_DATA_DIR="+srv.dataDir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("standin %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustCLI is cli that fails the test unless the command succeeds.
func mustCLI(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("standin %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// newSecret stores value as a secret (the provider's preset when provider is
// not "", else the custom flags in extra) and deletes it when the test ends.
func newSecret(t testing.TB, value, provider string, extra ...string) string {
	t.Helper()
	name := uniq(t, "sec")
	args := []string{"secret", "create", name}
	if provider != "" {
		args = append(args, "--provider", provider)
	}
	mustCLI(t, value, append(args, extra...)...)
	t.Cleanup(func() { cli(t, "", "secret", "delete", name) })
	return name
}

// newSandbox creates and starts a sandbox with `standin sandbox create NAME
// ARGS...` and deletes it when the test ends.
func newSandbox(t testing.TB, args ...string) string {
	t.Helper()
	name := uniq(t, "sbx")
	mustCLI(t, "", append([]string{"sandbox", "create", name}, args...)...)
	t.Cleanup(func() { cli(t, "", "sandbox", "delete", name) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb, err := srv.api.GetSandbox(ctx, name)
	if err != nil {
		t.Fatalf("get sandbox %q: %v", name, err)
	}
	srv.idsMu.Lock()
	srv.ids = append(srv.ids, sb.ID)
	srv.idsMu.Unlock()
	return name
}

// sh runs script with sh -c in the sandbox through `standin exec` and
// returns what it printed and its exit code.
func sh(t testing.TB, sandbox, script string) result {
	t.Helper()
	return cli(t, "", "exec", sandbox, "--", "sh", "-c", script)
}

// standIn reads the value of env var name inside the sandbox.
func standIn(t testing.TB, sandbox, name string) string {
	t.Helper()
	r := sh(t, sandbox, "printenv "+name)
	if r.Code != 0 {
		t.Fatalf("printenv %s in sandbox: exit %d: %s", name, r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// assertNoRealValue fails the test if any real value of the run, in any of
// its encodings, is in out (what a sandbox printed or received).
func assertNoRealValue(t testing.TB, where, out string) {
	t.Helper()
	for _, v := range allRealValues() {
		for _, form := range valueForms(v) {
			if strings.Contains(out, form) {
				t.Errorf("%s holds a real value (%d bytes)", where, len(v))
			}
		}
	}
}

// script is the path of a file under e2e/, valid inside sandboxes too.
func script(rel string) string { return filepath.Join(repoRoot, "e2e", rel) }

// httpGetLocal is an http.Client for the test itself (never a sandbox) to
// talk to loopback servers.
var httpLocal = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}

var _ = io.Discard
