package namespaces

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
)

// The promises every runtime keeps; what follows is this runtime's own.
func TestConformance(t *testing.T) {
	sandboxtest.Run(t, sandboxtest.Config{
		New: func(tb testing.TB) sandbox.Runtime { return newRuntime(tb) },
		// The processes in each of the init's namespaces, and mounts on
		// the host that mention the state dir (every mount is made in the
		// sandbox's own namespace: none may reach the host's).
		Leftovers: func(tb testing.TB, in sandbox.Instance) func() []string {
			pid, scratch := in.(*Instance).cmd.Process.Pid, in.(*Instance).rt.scratch
			namespaces := map[string]string{}
			for _, kind := range []string{"pid", "mnt", "net", "ipc", "uts"} {
				// Held open until the test ends: a freed namespace's
				// inode number goes to the next one made (another test's
				// sandbox, a spare), whose processes would then look
				// like leftovers of this one.
				f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
				if err != nil {
					tb.Fatalf("%s namespace of the init: %v", kind, err)
				}
				tb.Cleanup(func() { f.Close() })
				ns, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
				if err != nil {
					tb.Fatalf("%s namespace of the init: %v", kind, err)
				}
				namespaces[kind] = ns
			}
			return func() []string {
				var left []string
				for kind, ns := range namespaces {
					for _, p := range procsIn(tb, kind, ns) {
						left = append(left, kind+" namespace: "+p)
					}
				}
				mi, err := os.ReadFile("/proc/self/mountinfo")
				if err != nil {
					tb.Fatal(err)
				}
				for _, l := range strings.Split(string(mi), "\n") {
					if strings.Contains(l, scratch) {
						left = append(left, "host mount: "+l)
					}
				}
				return left
			}
		},
		DrainIdle: drainIdle,
	})
}

// An Exec too large for the init's control socket is refused, and the
// sandbox goes on.
func TestExecTooLarge(t *testing.T) {
	t.Parallel()
	in := sandboxtest.Start(t, newRuntime(t), sandbox.Spec{})
	_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true", strings.Repeat("x", maxMessage)}})
	if !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("Exec(huge argument) = %v, want ErrInvalidSpec", err)
	}
	if got := sandboxtest.Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("after a refused Exec = %+v", got)
	}
}

// Spare inits are started ahead and used by Start; Close kills those left.
func TestSpares(t *testing.T) {
	t.Parallel()
	r := newRuntimeConfig(t, Config{Spares: 2})
	// peek returns the spares waiting, leaving them there.
	peek := func() []*process {
		waitSpares(t, r)
		var ps []*process
		for range cap(r.spares) {
			p := <-r.spares
			ps = append(ps, p)
			r.spares <- p
		}
		return ps
	}
	spares := map[int]bool{}
	for _, p := range peek() {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.cmd.Process.Pid)); err != nil {
			t.Errorf("spare init %d not running: %v", p.cmd.Process.Pid, err)
		}
		spares[p.cmd.Process.Pid] = true
	}
	in := sandboxtest.Start(t, r, sandbox.Spec{}).(*Instance)
	if !spares[in.cmd.Process.Pid] {
		t.Errorf("Start used init %d, not a spare (%v)", in.cmd.Process.Pid, spares)
	}
	// Each Start is followed by a new spare (peek fails otherwise).
	for range 5 {
		peek()
		if err := sandboxtest.Start(t, r, sandbox.Spec{}).Delete(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	left := peek()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range left {
		select {
		case <-p.exited:
		default:
			t.Errorf("spare init %d still running after Close", p.cmd.Process.Pid)
		}
	}
	if got := sandboxtest.Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("running sandbox after Close: %+v", got)
	}
	// Start still works, without spares.
	sandboxtest.Start(t, r, sandbox.Spec{})
}

// waitSpares waits until the runtime's spare inits are all started.
func waitSpares(tb testing.TB, r *Runtime) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(r.spares) < cap(r.spares); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d spare inits started after 30s", len(r.spares), cap(r.spares))
		}
	}
}

// A sandbox whose init was killed from outside reports so, and can still
// be deleted.
func TestInitKilled(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{}).(*Instance)
	done := make(chan error, 1)
	go func() {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"sleep", "1000"}})
		done <- err
	}()
	for len(nsProcs(t, in.cmd.Process.Pid)) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	in.kill()
	for _, err := range []error{<-done, func() error {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}})
		return err
	}()} {
		if err == nil || !strings.Contains(err.Error(), "sandbox init exited") {
			t.Errorf("Exec with the init killed = %v, want an error saying it exited", err)
		}
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Errorf("Delete = %v, want nil", err)
	}
}

// A daemon that dies takes its sandboxes with it: their inits see the
// control socket close and exit.
func TestDaemonDeath(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=daemon", "STATE_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("helper daemon said %q, %v", line, err)
	}
	// Held open until the test ends: once freed, the namespace's inode
	// number goes to the next one made (a parallel test's sandbox), whose
	// processes would look like leftovers of this one.
	nsf, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer nsf.Close()
	pidNS, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", nsf.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if procs := procsIn(t, "pid", pidNS); len(procs) != 2 {
		t.Fatalf("processes in the helper's sandbox = %q, want init and sleep", procs)
	}
	// Its spare init too, if started yet.
	children := childInits(t, cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	var procs []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		procs = procsIn(t, "pid", pidNS)
		for _, pid := range children {
			if _, err := os.Stat(filepath.Join("/proc", pid)); err == nil {
				procs = append(procs, pid+": spare")
			}
		}
		if len(procs) == 0 {
			return
		}
	}
	t.Errorf("processes left 10s after the daemon died: %q", procs)
}

// The init gets none of the daemon's environment, which may hold the
// master key.
func TestInitEnvironment(t *testing.T) {
	t.Setenv("STANDIN_TEST_CANARY", "canary")
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{}).(*Instance)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", in.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 0 {
		t.Errorf("init environment = %q, want empty", b)
	}
	if got := sandboxtest.Cmd(t, in, "env"); strings.Contains(got.Stdout, "canary") {
		t.Errorf("command environment has the daemon's: %q", got.Stdout)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{})
	notNS := filepath.Join(t.TempDir(), "file")
	sandboxtest.WriteFile(t, notNS, "", 0o644)

	// Checked before an init is taken. (What every runtime refuses is
	// checked by sandboxtest.)
	tests := []struct {
		name string
		spec sandbox.Spec
	}{
		{"missing netns", sandbox.Spec{ID: sandboxtest.ID(), NetNS: "/run/netns/stintest-no-such-ns"}},
		{"not a netns", sandbox.Spec{ID: sandboxtest.ID(), NetNS: notNS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(context.Background(), tt.spec); !errors.Is(err, sandbox.ErrInvalidSpec) {
				t.Errorf("Start(%+v) = %v, want ErrInvalidSpec", tt.spec, err)
			}
		})
	}

	t.Run("fails inside", func(t *testing.T) {
		// A mount target under a file: found only while building the root.
		spec := sandbox.Spec{ID: sandboxtest.ID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/etc/passwd/x"}}}
		_, err := r.Start(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), "/etc/passwd/x") {
			t.Errorf("Start(mount under a file) = %v, want an error naming the target", err)
		}
		if got := sandboxtest.Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
			t.Errorf("running sandbox after a failed Start: %+v", got)
		}
		if r.ids.Held(spec.ID) {
			t.Errorf("ID %q still reserved after a failed Start", spec.ID)
		}
	})
}

// A Start that fails inside kills its init: no process is left.
func TestStartFailureLeavesNothing(t *testing.T) {
	r := newRuntimeConfig(t, Config{Spares: -1})
	// Not parallel: the inits of other tests would be counted.
	if got := inits(t); len(got) != 0 {
		t.Fatalf("inits before Start: %q", got)
	}
	spec := sandbox.Spec{ID: sandboxtest.ID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/etc/passwd/x"}}}
	if _, err := r.Start(context.Background(), spec); err == nil {
		t.Fatal("Start(mount under a file) succeeded")
	}
	if got := inits(t); len(got) != 0 {
		t.Errorf("inits after a failed Start: %q", got)
	}
	in := sandboxtest.Start(t, r, sandbox.Spec{}).(*Instance)
	if got := inits(t); len(got) != 1 {
		t.Errorf("inits with one sandbox = %q, want one: the count above proves nothing", got)
	}
	in.Delete(context.Background())
}

// inits returns the sandbox inits this process started.
func inits(t *testing.T) []string {
	t.Helper()
	return childInits(t, os.Getpid())
}

// childInits returns the sandbox inits started by process parent.
func childInits(t *testing.T, parent int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		_, rest, _ := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if len(f) > 1 && f[1] == strconv.Itoa(parent) && string(cmdline) == initName+"\x00" {
			got = append(got, e.Name())
		}
	}
	return got
}

// Without root, or without the right to make namespaces, the runtime says
// it is unavailable and how to fix that.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	// The test binary, where the sandbox user may run it.
	bin := filepath.Join(sandboxtest.HostDir(t), "namespaces.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	sandboxtest.WriteFile(t, bin, string(data), 0o755)

	t.Run("not root", func(t *testing.T) {
		out, err := outputOfCopy(func() *exec.Cmd {
			cmd := exec.Command(bin)
			cmd.Env = []string{helperEnv + "=new"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandbox.DefaultUID, Gid: sandbox.DefaultGID}}
			return cmd
		})
		if err != nil || !strings.Contains(string(out), sandbox.ErrUnavailable.Error()) || !strings.Contains(string(out), "sudo standin serve") {
			t.Errorf("New as uid %d = %q, %v; want ErrUnavailable saying to use sudo", sandbox.DefaultUID, out, err)
		}
	})
	t.Run("no CAP_SYS_ADMIN", func(t *testing.T) {
		out, err := outputOfCopy(func() *exec.Cmd {
			cmd := exec.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", bin)
			cmd.Env = []string{helperEnv + "=start"}
			return cmd
		})
		if err != nil || !strings.HasPrefix(string(out), "true ") || !strings.Contains(string(out), "CAP_SYS_ADMIN") {
			t.Errorf("Start without CAP_SYS_ADMIN = %q, %v; want ErrUnavailable naming CAP_SYS_ADMIN", out, err)
		}
	})
}

// outputOfCopy runs the command newCmd makes, which executes a binary the
// test has just written, and returns its combined output. While the test
// wrote it, a parallel test's fork could inherit the write descriptor
// (until its exec closes it), so the first exec may fail with "text file
// busy" (golang/go#22315): it is retried then, with a fresh command.
func outputOfCopy(newCmd func() *exec.Cmd) ([]byte, error) {
	for try := 0; ; try++ {
		out, err := newCmd().CombinedOutput()
		// setpriv reports it in its output.
		busy := errors.Is(err, syscall.ETXTBSY) || bytes.Contains(out, []byte("Text file busy"))
		if !busy || try == 50 {
			return out, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewWithoutInit(t *testing.T) {
	initCalled.Store(false)
	defer initCalled.Store(true)
	_, err := New(Config{StateDir: t.TempDir()})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "namespaces.Init") {
		t.Errorf("New without Init = %v, want ErrUnavailable naming namespaces.Init", err)
	}
}
