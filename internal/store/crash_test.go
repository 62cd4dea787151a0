package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crashEnv names the database the helper process writes to.
const crashEnv = "STANDIN_STORE_CRASH_DB"

// TestHelperProcess is not a test: TestCrashSafety runs the test binary
// again with crashEnv set, and this function is then the child that writes
// until it is killed. Without crashEnv it does nothing.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(2)
	}
	// Bounded so a parent that never kills does not leave it running.
	for i := range 100000 {
		name := fmt.Sprintf("s%d", i)
		sec := testSecret(name)
		if err := s.CreateSecret(ctx, sec); err != nil {
			fmt.Printf("ERR %d: %v\n", i, err)
			os.Exit(2)
		}
		fmt.Printf("ACK secret %d\n", i)
		b := testBinding(name, "TOKEN", name)
		if err := s.CreateSandbox(ctx, testSandbox(name), []Binding{b}); err != nil {
			fmt.Printf("ERR %d: %v\n", i, err)
			os.Exit(2)
		}
		fmt.Printf("ACK sandbox %d\n", i)
		if err := s.AppendActivity(ctx, []Activity{{SecretID: sec.ID, SecretName: name, Path: "/"}}); err != nil {
			fmt.Printf("ERR %d: %v\n", i, err)
			os.Exit(2)
		}
		fmt.Printf("ACK activity %d\n", i)
	}
	os.Exit(0)
}

// TestCrashSafety kills a writing process with SIGKILL and checks that
// every write it acknowledged is in the database, which is intact.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	const killAfter = 60 // ACK lines: 20 full rounds
	acked := map[string][]int{}
	sc := bufio.NewScanner(out)
	n := 0
	for n < killAfter && sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERR") {
			t.Errorf("child: %s", line)
		}
		var kind string
		var i int
		if _, err := fmt.Sscanf(line, "ACK %s %d", &kind, &i); err != nil {
			continue // test framework output
		}
		acked[kind] = append(acked[kind], i)
		n++
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 {
		t.Errorf("child exit = %v, want killed by signal (it must still be writing when killed)", err)
	}
	if n < killAfter {
		t.Fatalf("child stopped after %d ACKs, want %d", n, killAfter)
	}

	ctx := context.Background()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	var integrity string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, want ok", integrity)
	}
	for _, i := range acked["secret"] {
		if _, err := s.GetSecret(ctx, fmt.Sprintf("s%d", i)); err != nil {
			t.Errorf("acknowledged secret %d: %v", i, err)
		}
	}
	for _, i := range acked["sandbox"] {
		name := fmt.Sprintf("s%d", i)
		b, err := s.BindingByHash(ctx, hashOf(name+"/TOKEN"))
		if err != nil {
			t.Errorf("acknowledged binding %d: %v", i, err)
			continue
		}
		if b.SandboxName != name || b.SecretName != name {
			t.Errorf("binding %d names = %q, %q; want %q", i, b.SandboxName, b.SecretName, name)
		}
	}
	for _, i := range acked["activity"] {
		got, err := s.ListActivity(ctx, ActivityQuery{SecretID: fmt.Sprintf("sec_s%d", i)})
		if err != nil || len(got) != 1 {
			t.Errorf("acknowledged activity %d: %d records, %v", i, len(got), err)
		}
	}
	// The store stays writable after recovery.
	if err := s.CreateSecret(ctx, testSecret("after-crash")); err != nil {
		t.Errorf("CreateSecret after recovery = %v", err)
	}
}
