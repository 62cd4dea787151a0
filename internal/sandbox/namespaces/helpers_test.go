package namespaces

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// These tests run real sandboxes: they need root. Each test has its own
// state directory under tb.TempDir() and deletes its sandboxes when it ends.

// helperEnv makes the test binary act as something else than the tests
// (see helperMain).
const helperEnv = "STANDIN_NAMESPACES_TEST_HELPER"

func TestMain(m *testing.M) {
	Init() // the test binary is also the sandboxes' init
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helperMain(h))
	}
	os.Exit(m.Run())
}

// helperMain runs the test binary as a stand-in for a daemon:
//
//	new:    New with a fresh state dir; prints its error
//	start:  Start a sandbox; prints whether the error is ErrUnavailable, and it
//	daemon: start a sandbox with `sleep` in the background, print the
//	        init's host pid, then wait to be killed
func helperMain(mode string) int {
	switch mode {
	case "new":
		dir, err := os.MkdirTemp("", "standin-ns-helper-")
		if err == nil {
			defer os.RemoveAll(dir)
			_, err = New(Config{StateDir: filepath.Join(dir, "state"), Logger: slog.New(slog.DiscardHandler)})
		}
		fmt.Println(err)
		return 0
	case "start":
		dir, err := os.MkdirTemp("", "standin-ns-helper-")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer os.RemoveAll(dir)
		r, err := New(Config{StateDir: filepath.Join(dir, "state"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		in, err := r.Start(context.Background(), sandbox.Spec{ID: "helper"})
		if err == nil {
			in.Delete(context.Background())
		}
		fmt.Println(errors.Is(err, sandbox.ErrUnavailable), err)
		return 0
	case "daemon":
		r, err := New(Config{StateDir: os.Getenv("STATE_DIR"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		in, err := r.Start(context.Background(), sandbox.Spec{ID: "daemon"})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"sh", "-c", "sleep 1000 >/dev/null 2>&1 &"}}); err != nil || code != 0 {
			fmt.Println(code, err)
			return 1
		}
		fmt.Println(in.(*Instance).cmd.Process.Pid)
		select {}
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, mode)
	return 2
}

// newRuntime returns a Runtime with its own state directory and the
// default spare init.
func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	return newRuntimeConfig(tb, Config{})
}

func newRuntimeConfig(tb testing.TB, cfg Config) *Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("these tests create namespaces, which needs root")
	}
	cfg.StateDir = tb.TempDir()
	cfg.Logger = slog.New(slog.DiscardHandler)
	r, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

var idSeq atomic.Int64

// testID returns a sandbox ID unique on this machine for this process.
func testID() string {
	return fmt.Sprintf("test-%d-%d", os.Getpid(), idSeq.Add(1))
}

// start starts a sandbox that is deleted when the test ends.
func start(tb testing.TB, r *Runtime, spec sandbox.Spec) *Instance {
	tb.Helper()
	if spec.ID == "" {
		spec.ID = testID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, err := r.Start(ctx, spec)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := in.Delete(context.Background()); err != nil {
			tb.Errorf("Delete: %v", err)
		}
	})
	return in.(*Instance)
}

type result struct {
	Stdout, Stderr string
	Exit           int
}

// run runs args in the sandbox and fails the test if it cannot be run.
func run(tb testing.TB, in sandbox.Instance, args ...string) result {
	tb.Helper()
	return runSpec(tb, in, sandbox.ExecSpec{Args: args})
}

func runSpec(tb testing.TB, in sandbox.Instance, spec sandbox.ExecSpec) result {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := in.Exec(ctx, spec)
	if err != nil {
		tb.Fatalf("Exec(%q): %v", spec.Args, err)
	}
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Exit: code}
}

// sh runs a shell script in the sandbox.
func sh(tb testing.TB, in sandbox.Instance, script string) result {
	tb.Helper()
	return run(tb, in, "sh", "-c", script)
}

// python runs a python3 program in the sandbox. python3 is the host's,
// seen read-only.
func python(tb testing.TB, in sandbox.Instance, program string) result {
	tb.Helper()
	return run(tb, in, "/usr/bin/python3", "-c", program)
}

// nsProcs returns the host pids of the processes in the PID namespace of
// process pid (pid included), with their command lines.
func nsProcs(tb testing.TB, pid int) []string {
	tb.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		tb.Fatalf("PID namespace of %d: %v", pid, err)
	}
	return procsIn(tb, "pid", ns)
}

// procsIn returns the processes whose namespace of kind (as in
// /proc/PID/ns/KIND) is ns.
func procsIn(tb testing.TB, kind, ns string) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var procs []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		got, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", kind))
		if err != nil || got != ns {
			continue // gone, or elsewhere
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		procs = append(procs, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return procs
}

// hostDir makes a directory that sandboxes see (not under /tmp or /var/tmp,
// which are empty inside), removed when the test ends.
func hostDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/var/cache", "standin-sandbox-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func writeFile(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

func ip(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %q: %v: %s", args, err, out)
	}
}

// testNetNS makes a named network namespace, deleted when the test ends,
// and returns its name and path.
func testNetNS(tb testing.TB, what string) (string, string) {
	tb.Helper()
	name := fmt.Sprintf("stintest-ns-%s-%d-%d", what, os.Getpid(), idSeq.Add(1))
	ip(tb, "netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	ip(tb, "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// inNetNS runs fn on a thread in the network namespace at path; sockets
// made there stay in it.
func inNetNS(tb testing.TB, path string, fn func() error) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("in %s: %v", path, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
