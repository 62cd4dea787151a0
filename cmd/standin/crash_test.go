package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/server"
	"github.com/standin/standin/internal/testutil"
)

// standinBinary returns a path that runs this test binary as the standin
// command (testscript.Main dispatches on the program name).
func standinBinary(tb testing.TB) string {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	link := filepath.Join(tb.TempDir(), "standin")
	if err := os.Symlink(exe, link); err != nil {
		tb.Fatal(err)
	}
	return link
}

// startServer runs `standin serve` as a child process and returns a client
// on its socket once it answers.
func startServer(tb testing.TB, bin, dataDir string, env ...string) (*exec.Cmd, *client.Client, *bytes.Buffer) {
	tb.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--listen", "off", "--proxy-listen", "127.0.0.1:0", "--runtime", "none")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tok := waitFor(tb, func() ([]byte, error) { return os.ReadFile(filepath.Join(dataDir, server.TokenFile)) })
	c := client.New("http://standin", strings.TrimSpace(string(tok)),
		client.WithUnixSocket(filepath.Join(dataDir, server.SocketFile)))
	waitFor(tb, func() ([]byte, error) { return nil, c.Health(context.Background()) })
	return cmd, c, &logs
}

func waitFor(tb testing.TB, f func() ([]byte, error)) []byte {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := f()
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			tb.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9KeepsAcknowledgedWrites: every secret and binding the API
// acknowledged is there after SIGKILL and restart, and the stand-in is the
// same.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	bin := standinBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()

	cmd, c, _ := startServer(t, bin, dir)
	const n = 20
	want := map[string]string{} // env var -> stand-in
	if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: "sb"}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := "s" + string(rune('a'+i))
		if _, err := c.CreateSecret(ctx, client.SecretCreate{Name: name, Provider: "openai",
			Value: "sk-proj-crashtest-" + name}); err != nil {
			t.Fatal(err)
		}
		env := "KEY_" + strings.ToUpper(name)
		b, err := c.Attach(ctx, "sb", env, name)
		if err != nil {
			t.Fatal(err)
		}
		want[env] = b.StandIn
	}
	// No graceful shutdown: the process dies right after the last ack.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	_, c2, _ := startServer(t, bin, dir)
	secrets, err := c2.ListSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != n {
		t.Errorf("after kill -9: %d secrets, want %d", len(secrets), n)
	}
	sb, err := c2.GetSandbox(ctx, "sb")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range sb.Bindings {
		got[b.EnvVar] = b.StandIn
	}
	if len(got) != n {
		t.Errorf("after kill -9: %d bindings, want %d", len(got), n)
	}
	for env, s := range want {
		if got[env] != s {
			t.Errorf("binding %s: stand-in changed across restart", env)
		}
	}
}

// TestWrongMasterKeyRefusesAndTouchesNothing: a server started with a key
// that does not open the data refuses, says what to do, and leaves every
// file in the data directory byte for byte as it was.
func TestWrongMasterKeyRefusesAndTouchesNothing(t *testing.T) {
	bin := standinBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	key1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))

	cmd, c, _ := startServer(t, bin, dir, "STANDIN_MASTER_KEY="+key1)
	if _, err := c.CreateSecret(ctx, client.SecretCreate{Name: "a", Provider: "anthropic", Value: "sk-ant-api03-wrongkeytest"}); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	before := hashDir(t, dir)

	out, err := exec.Command(bin, "serve", "--data-dir", dir, "--listen", "off", "--proxy-listen", "127.0.0.1:0", "--runtime", "none").CombinedOutput()
	if err == nil {
		t.Fatal("server started with a master key that does not open the data")
	}
	_ = out
	wrong := exec.Command(bin, "serve", "--data-dir", dir, "--listen", "off", "--proxy-listen", "127.0.0.1:0", "--runtime", "none")
	wrong.Env = append(os.Environ(), "STANDIN_MASTER_KEY="+key2)
	out, err = wrong.CombinedOutput()
	if err == nil {
		t.Fatal("server started with the wrong STANDIN_MASTER_KEY")
	}
	if !strings.Contains(string(out), "STANDIN_MASTER_KEY") || !strings.Contains(string(out), "nothing was changed") {
		t.Errorf("refusal does not say what to do:\n%s", out)
	}
	after := hashDir(t, dir)
	for name, h := range before {
		if name == server.LockFile {
			continue // holds the pid of whoever took the lock last
		}
		if after[name] != h {
			t.Errorf("%s changed although the server refused to start", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && name != server.LockFile {
			t.Errorf("%s appeared although the server refused to start", name)
		}
	}

	// The right key still opens everything.
	_, c2, _ := startServer(t, bin, dir, "STANDIN_MASTER_KEY="+key1)
	if _, err := c2.GetSecret(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func hashDir(tb testing.TB, dir string) map[string][32]byte {
	tb.Helper()
	out := map[string][32]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		// The -shm file is SQLite's shared-memory index of the WAL, rebuilt
		// by every reader; it holds no data, and a read-only open may
		// update it.
		if e.Type()&os.ModeSocket != 0 || e.IsDir() || strings.HasSuffix(e.Name(), "-shm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// TestKill9LeavesNoSandbox: a server killed with SIGKILL leaves its
// sandboxes' namespaces (and the one its pool had ready) behind, and maybe
// runsc processes (a sandbox ends by itself once its agent sees the
// server's end of its pipe close, but not at once); the next server on the
// data directory removes all of them, and the records say "stopped".
func TestKill9LeavesNoSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs sandboxes, which needs root; CI runs as root")
	}
	bin := standinBinary(t)
	// Outside /tmp: the sandboxes' own /tmp would hide it anyway.
	dir, err := os.MkdirTemp("/var/cache", "standin-kill9-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(t.TempDir(), "standin.json")
	if err := os.WriteFile(conf, []byte(`{"runscPath": "`+testutil.RunscBin(t)+`", "pool": 1, "gateway": {"dialGuard": ["127.0.0.0/8"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := func() (*exec.Cmd, *client.Client) {
		cmd := exec.Command(bin, "serve", "--config", conf, "--data-dir", dir, "--listen", "off", "--proxy-listen", "127.0.0.1:0")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		tok := waitFor(t, func() ([]byte, error) { return os.ReadFile(filepath.Join(dir, server.TokenFile)) })
		c := client.New("http://standin", strings.TrimSpace(string(tok)),
			client.WithUnixSocket(filepath.Join(dir, server.SocketFile)))
		waitFor(t, func() ([]byte, error) { return nil, c.Health(context.Background()) })
		return cmd, c
	}
	stateDir := server.RuntimeStateDir(dir)
	ctx := context.Background()

	cmd, c := serve()
	for _, name := range []string{"a", "b"} {
		if _, err := c.CreateSandbox(ctx, client.SandboxCreate{Name: name}); err != nil {
			t.Fatalf("CreateSandbox(%q): %v", name, err)
		}
		var out bytes.Buffer
		if code, err := c.Exec(ctx, name, client.ExecRequest{Args: []string{"sh", "-c", "sleep 1000 & echo up"}}, &out, nil); err != nil || code != 0 {
			t.Fatalf("exec in %q = %d, %v", name, code, err)
		}
	}
	// The pool refills in the background: wait for its sandbox too.
	instances := func() []string {
		ents, _ := os.ReadDir(filepath.Join(dir, "sandboxes"))
		var ids []string
		for _, e := range ents {
			ids = append(ids, e.Name())
		}
		return ids
	}
	waitFor(t, func() ([]byte, error) {
		if n := len(instances()); n < 3 {
			return nil, fmt.Errorf("%d sandbox instances, want 3 (two and the pool's)", n)
		}
		return nil, nil
	})
	// A pooled sandbox counts once its runsc is up: give its start time to end.
	waitFor(t, func() ([]byte, error) {
		if n := len(testutil.RunscProcs(t, stateDir)); n < 6 {
			return nil, fmt.Errorf("%d runsc processes, want 6 (sandbox and gofer of each of 3)", n)
		}
		return nil, nil
	})
	ids := instances()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	netnsOf := func() []string {
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, id := range ids {
			ns := "stn-" + strings.TrimPrefix(id, "sbx_")
			if bytes.Contains(out, []byte(ns+" ")) || bytes.Contains(out, []byte(ns+"\n")) {
				left = append(left, ns)
			}
		}
		return left
	}
	// Control: the killed server's namespaces are still there.
	if left := netnsOf(); len(left) != len(ids) {
		t.Fatalf("namespaces after SIGKILL = %q, want all %d of %q: the test would prove nothing", left, len(ids), ids)
	}

	cmd, c = serve()
	if procs := testutil.RunscProcs(t, stateDir); len(procs) != 0 {
		t.Errorf("runsc processes after restart:\n%s", strings.Join(procs, "\n"))
	}
	if left := netnsOf(); len(left) != 0 {
		t.Errorf("namespaces after restart: %q", left)
	}
	for _, name := range []string{"a", "b"} {
		sb, err := c.GetSandbox(ctx, name)
		if err != nil || sb.State != "stopped" {
			t.Errorf("GetSandbox(%q) after restart = state %q, %v; want stopped", name, sb.State, err)
		}
	}

	// Stopped with SIGTERM, the new server shuts down and leaves nothing of
	// its own: not even the sandbox its pool is still starting by now,
	// whose namespace would outlive it.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("server stopped with SIGTERM: %v, want a clean exit", err)
	}
	if left := instances(); len(left) != 0 {
		t.Errorf("sandbox instances after the server stopped: %q", left)
	}
}
