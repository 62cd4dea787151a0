package gvisor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// These tests run real sandboxes: they need root and bin/runsc (`make
// runsc`). Each test has its own runsc root and state under tb.TempDir(),
// and deletes its sandboxes when it ends.

// runscBin finds bin/runsc at the root of the repository.
func runscBin(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "bin", "runsc")
		if _, err := os.Stat(filepath.Join(dir, "tools", "runsc", "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				tb.Fatalf("%s is missing: run `make runsc` (or `make test`, which builds it)", p)
			}
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("repository root (with tools/runsc) not found above the working directory")
		}
		dir = parent
	}
}

// newRuntime returns a Runtime with its own state directory.
func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("these tests run runsc, which needs root")
	}
	r, err := New(Config{Runsc: runscBin(tb), StateDir: tb.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
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

// runscProcs returns the host processes of runsc commands and sandboxes
// that use root, by their command lines (zombies have none and are not
// counted).
func runscProcs(tb testing.TB, root string) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var procs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // not a process, or gone
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, "--root="+root+" ") {
			procs = append(procs, e.Name()+": "+cmdline)
		}
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

// testNetNS makes a network namespace like package netns does (lo, and tun0
// with an address and a default route through the gateway 100.96.0.1) and
// returns its path and the TUN device's file, readable with deadlines.
func testNetNS(tb testing.TB) (string, *os.File) {
	tb.Helper()
	name := fmt.Sprintf("stintest-gv-%d-%d", os.Getpid(), idSeq.Add(1))
	ip := func(args ...string) {
		tb.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("ip %q: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"tuntap", "add", "dev", "tun0", "mode", "tun"},
		{"addr", "add", "100.96.0.2/30", "dev", "tun0"},
		{"link", "set", "tun0", "up"},
		{"route", "add", "default", "via", "100.96.0.1", "dev", "tun0", "onlink"},
	} {
		ip(append([]string{"-n", name}, args...)...)
	}
	path := "/run/netns/" + name

	// Attach to tun0 from inside the namespace, on a thread of our own.
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		fd, err := func() (int, error) {
			ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return -1, err
			}
			defer unix.Close(ns)
			if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
				return -1, err
			}
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return -1, err
			}
			ifr, err := unix.NewIfreq("tun0")
			if err != nil {
				return -1, err
			}
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				unix.Close(fd)
				return -1, err
			}
			return fd, nil
		}()
		ch <- res{fd, err}
	}()
	got := <-ch
	if got.err != nil {
		tb.Fatalf("attach to tun0 in %s: %v", name, got.err)
	}
	f := os.NewFile(uintptr(got.fd), "tun0")
	tb.Cleanup(func() { f.Close() })
	return path, f
}
