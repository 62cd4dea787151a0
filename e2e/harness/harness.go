// Package harness runs standin end to end for the e2e test packages, as a
// user runs it: it builds the standin binary, starts `standin serve` with a
// config file (the way the README says, plus test-only routing) and offers
// helpers that work only through the CLI and the API, with real clients
// running inside real gVisor sandboxes.
//
// A test package calls Register for its fake upstream hosts from init
// functions and Main from TestMain:
//
//	func init() { harness.Register("api.example.test", handler) }
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// Nothing sends a packet off the machine, even if a defence is broken: the
// server runs with its upstream dial guard at 127.0.0.0/8, every registered
// name is routed to the local fake upstream (gateway.hosts), and every other
// upstream lookup goes to the harness's own DNS server on loopback
// (gateway.resolver), which knows only the rebinding names in RebindRecords.
//
// It needs root and bin/runsc (`make test` builds it), like CI.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

// Srv is the one server every test of the package uses. Tests name their
// secrets and sandboxes with Uniq, so they do not collide.
var Srv *Server

// RepoRoot is the repository's top directory.
var RepoRoot string

// filesDir holds a copy of e2e/ that sandboxes can see (see Path).
var filesDir string

// Main starts the server, runs the tests, stops the server, checks the
// server's log and data directory for real values and prints the attack
// summary; it exits the process.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests run real sandboxes and need root (CI runs them as root)")
		return 1
	}
	var err error
	if RepoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "standin-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Sandboxes see the host's root filesystem read-only, but /tmp is
	// their own: a clone under /tmp (as CI may make) is invisible inside.
	// So scripts and node_modules run from a copy outside /tmp.
	if filesDir, err = os.MkdirTemp("/var/cache", "standin-e2e-files-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(filesDir)
	// MkdirTemp made it 0700; the sandbox user must read it.
	if err := os.Chmod(filesDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := os.CopyFS(filesDir, os.DirFS(filepath.Join(RepoRoot, "e2e"))); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: copy e2e/ for the sandboxes:", err)
		return 1
	}
	Srv, err = startServer(tmp)
	if err != nil {
		if Srv != nil {
			os.RemoveAll(Srv.DataDir)
		}
		fmt.Fprintln(os.Stderr, "e2e: start standin:", err)
		return 1
	}
	code = m.Run()
	if err := Srv.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop standin:", err)
		code = 1
	}
	// Whatever the tests did, no real value may be in the server's log or
	// anywhere in its data directory.
	if leaks := Srv.leaks(); len(leaks) > 0 {
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "e2e: LEAK:", l)
		}
		code = 1
	}
	os.RemoveAll(Srv.DataDir)
	// go test shows a passing package's output only with -v, so the
	// summary also goes to bin/, where `make test` prints it.
	var summary bytes.Buffer
	if !printAttackSummary(&summary) {
		code = 1
	}
	if summary.Len() > 0 {
		os.Stdout.Write(summary.Bytes())
		os.WriteFile(filepath.Join(RepoRoot, "bin", SummaryFile), summary.Bytes(), 0o644)
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

// Server is a running `standin serve` process.
type Server struct {
	Bin       string // the standin binary
	DataDir   string // outside /tmp, so hiding it is standin's doing
	LogPath   string // the server's stderr (JSON log, level debug)
	APIAddr   string // the API's loopback TCP address
	ProxyAddr string // the gateway's explicit proxy
	API       *client.Client
	Up        *Upstream
	DNS       *RebindDNS

	cmd    *exec.Cmd
	exited chan error

	idsMu sync.Mutex
	ids   []string // of every sandbox created
}

func startServer(tmp string) (s *Server, err error) {
	s = &Server{Bin: filepath.Join(tmp, "standin"), exited: make(chan error, 1)}
	// As `make build` lays them out: the gVisor runtime runs the
	// standin-agent found next to standin in every sandbox.
	for _, b := range []struct{ out, pkg string }{{s.Bin, "./cmd/standin"}, {filepath.Join(tmp, "standin-agent"), "./cmd/standin-agent"}} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Dir = RepoRoot
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	// Outside /tmp, which every sandbox has its own of: the data directory
	// must be hidden from sandboxes by standin, not by accident.
	if s.DataDir, err = os.MkdirTemp("/var/cache", "standin-e2e-data-"); err != nil {
		return nil, err
	}
	if s.Up, err = startUpstream(tmp); err != nil {
		return s, err
	}
	if s.DNS, err = startRebindDNS(); err != nil {
		return s, err
	}
	hosts := map[string]string{}
	for _, name := range s.Up.Names() {
		hosts[name] = s.Up.Addr
	}
	s.APIAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	s.ProxyAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	cfg := map[string]any{
		"version":   1,
		"dataDir":   s.DataDir,
		"listen":    s.APIAddr,
		"log":       map[string]string{"format": "json", "level": "debug"},
		"runtime":   "gvisor",
		"runscPath": filepath.Join(RepoRoot, "bin", "runsc"),
		"gateway": map[string]any{
			"listen":         s.ProxyAddr,
			"hosts":          hosts,
			"dialGuard":      []string{"127.0.0.0/8"},
			"upstreamCAFile": s.Up.CAFile,
			"resolver":       s.DNS.Addr,
		},
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(tmp, "standin.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return s, err
	}
	s.LogPath = filepath.Join(tmp, "server.log")
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return s, err
	}
	s.cmd = exec.Command(s.Bin, "serve", "--config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = append(os.Environ(), "STANDIN_DATA_DIR="+s.DataDir)
	if err := s.cmd.Start(); err != nil {
		return s, err
	}
	go func() { s.exited <- s.cmd.Wait(); logf.Close() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		tok, err := os.ReadFile(filepath.Join(s.DataDir, "admin.token"))
		if err == nil {
			s.API = client.New("http://"+s.APIAddr, strings.TrimSpace(string(tok)))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = s.API.ListSandboxes(ctx)
			cancel()
			if err == nil {
				return s, nil
			}
		}
		select {
		case werr := <-s.exited:
			log, _ := os.ReadFile(s.LogPath)
			return s, fmt.Errorf("standin serve exited: %v\n%s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			log, _ := os.ReadFile(s.LogPath)
			return s, fmt.Errorf("standin serve not ready after 60s: %v\n%s", err, log)
		}
	}
}

// stop ends the server with SIGTERM, as a service manager would, and
// checks that it left none of its sandboxes' namespaces behind.
func (s *Server) stop() error {
	defer s.Up.close()
	defer s.DNS.close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			log, _ := os.ReadFile(s.LogPath)
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

func (s *Server) sandboxIDs() []string {
	s.idsMu.Lock()
	defer s.idsMu.Unlock()
	return slices.Clone(s.ids)
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// leaks lists every place a real value of this run shows up in the server's
// log or data directory, in any of its encodings.
func (s *Server) leaks() []string {
	var found []string
	check := func(where string, data []byte) {
		if n := CountRealValues(string(data)); n > 0 {
			found = append(found, fmt.Sprintf("%d real value(s) in %s", n, where))
		}
	}
	if log, err := os.ReadFile(s.LogPath); err == nil {
		check("the server log", log)
	}
	filepath.WalkDir(s.DataDir, func(path string, d os.DirEntry, err error) error {
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

// Real values. Every real credential a test stores must come from
// RealValue, so that the leak checks know them all.
var (
	realMu     sync.Mutex
	realValues []string
)

// RealValue returns a fresh random credential: prefix followed by n random
// lowercase hex digits, and records it for the leak checks.
func RealValue(prefix string, n int) string {
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

// CountRealValues counts the real values of this run that appear in s, in
// any of the forms ValueForms lists.
func CountRealValues(s string) int {
	n := 0
	for _, v := range allRealValues() {
		for _, form := range ValueForms(v) {
			n += strings.Count(s, form)
		}
	}
	return n
}

// AssertNoRealValue fails the test if any real value of the run, in any of
// its encodings, is in out (what a sandbox printed or received).
func AssertNoRealValue(t testing.TB, where, out string) {
	t.Helper()
	if n := CountRealValues(out); n > 0 {
		t.Errorf("%s holds %d real value(s)", where, n)
	}
}

// Uniq makes a name for a test's secret or sandbox from what and the test's
// name: lowercase letters, digits and '-', unique in the run.
func Uniq(t testing.TB, what string) string {
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
	return strings.Trim(what+"-"+strings.Trim(name, "-"), "-") + "-" + hex.EncodeToString(b)
}

// Result is what a CLI command did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Output is stdout and stderr together, for messages.
func (r Result) Output() string { return r.Stdout + r.Stderr }

// CLI runs `standin ARGS...` with stdin as its input, the way a user on the
// server's machine does (it finds the socket and token in the data
// directory).
func CLI(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Srv.Bin, args...)
	cmd.Env = append(os.Environ(), "STANDIN_DATA_DIR="+Srv.DataDir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("standin %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// MustCLI is CLI that fails the test unless the command succeeds.
func MustCLI(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := CLI(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("standin %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// NewSecret stores value with `standin secret create NAME ARGS...` (for
// example "--provider", "openai", or "--host", "api.x.test=bearer") and
// deletes it when the test ends. It returns the secret's name.
func NewSecret(t testing.TB, value string, args ...string) string {
	t.Helper()
	name := Uniq(t, "sec")
	MustCLI(t, value, append([]string{"secret", "create", name}, args...)...)
	t.Cleanup(func() { CLI(t, "", "secret", "delete", name) })
	return name
}

// NewSandbox creates and starts a sandbox with `standin sandbox create NAME
// ARGS...`, deletes it when the test ends and returns its name.
func NewSandbox(t testing.TB, args ...string) string {
	t.Helper()
	name := Uniq(t, "sbx")
	MustCLI(t, "", append([]string{"sandbox", "create", name}, args...)...)
	t.Cleanup(func() { CLI(t, "", "sandbox", "delete", name) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb, err := Srv.API.GetSandbox(ctx, name)
	if err != nil {
		t.Fatalf("get sandbox %q: %v", name, err)
	}
	Srv.idsMu.Lock()
	Srv.ids = append(Srv.ids, sb.ID)
	Srv.idsMu.Unlock()
	return name
}

// Sh runs script with `sh -c` in the sandbox through `standin exec` and
// returns what it printed and its exit code.
func Sh(t testing.TB, sandbox, script string) Result {
	t.Helper()
	return CLI(t, "", "exec", sandbox, "--", "sh", "-c", script)
}

// Exec runs argv in the sandbox through `standin exec`.
func Exec(t testing.TB, sandbox string, argv ...string) Result {
	t.Helper()
	return CLI(t, "", append([]string{"exec", sandbox, "--"}, argv...)...)
}

// StandIn reads the value of env var name inside the sandbox.
func StandIn(t testing.TB, sandbox, name string) string {
	t.Helper()
	r := Exec(t, sandbox, "printenv", name)
	if r.Code != 0 {
		t.Fatalf("printenv %s in sandbox: exit %d: %s", name, r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// Path is the absolute path of a file under e2e/, in a copy that
// sandboxes see too (made when the package's tests start: files written
// under e2e/ later are not in it).
func Path(rel string) string { return filepath.Join(filesDir, rel) }
