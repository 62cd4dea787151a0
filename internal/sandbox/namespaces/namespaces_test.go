package namespaces

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
)

func TestExec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{Env: []string{"FROM_SPEC=spec", "OVERRIDDEN=spec"}})

	tests := []struct {
		name string
		args []string
		env  []string
		dir  string
		want result
	}{
		{"echo", []string{"echo", "hi"}, nil, "", result{Stdout: "hi\n"}},
		{"exit status", []string{"sh", "-c", "exit 3"}, nil, "", result{Exit: 3}},
		{"killed by signal", []string{"sh", "-c", "kill -9 $$"}, nil, "", result{Exit: 128 + 9}},
		{"terminated", []string{"sh", "-c", "kill -TERM $$"}, nil, "", result{Exit: 128 + 15}},
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 1"}, nil, "", result{Stderr: "oops\n", Exit: 1}},
		{"not root", []string{"id", "-u"}, nil, "", result{Stdout: "65534\n"}},
		{"groups", []string{"id", "-G"}, nil, "", result{Stdout: "65534\n"}},
		{"home", []string{"sh", "-c", `echo "$HOME"; pwd`}, nil, "", result{Stdout: "/home/sandbox\n/home/sandbox\n"}},
		{"dir", []string{"pwd"}, nil, "/usr", result{Stdout: "/usr\n"}},
		{"env", []string{"sh", "-c", `echo "$FROM_SPEC $OVERRIDDEN $FROM_EXEC"`},
			[]string{"OVERRIDDEN=exec", "FROM_EXEC=exec"}, "", result{Stdout: "spec exec exec\n"}},
		{"whole env", []string{"env"}, []string{"LANG=C"}, "", result{Stdout: strings.Join([]string{
			defaultPath, "HOME=/home/sandbox", "LANG=C", "FROM_SPEC=spec", "OVERRIDDEN=spec", ""}, "\n")}},
		{"hostname", []string{"hostname"}, nil, "", result{Stdout: "sandbox\n"}},
		{"umask", []string{"sh", "-c", "umask"}, nil, "", result{Stdout: "0022\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runSpec(t, in, sandbox.ExecSpec{Args: tt.args, Env: tt.env, Dir: tt.dir})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Exec(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	t.Run("spec user and hostname", func(t *testing.T) {
		other := start(t, r, sandbox.Spec{UID: 1234, GID: 4321, Hostname: "box-1"})
		got := sh(t, other, `id -u; id -g; hostname; stat -c %u:%g "$HOME"`)
		if want := "1234\n4321\nbox-1\n1234:4321\n"; got.Stdout != want {
			t.Errorf("with UID, GID, Hostname = %+v, want %q", got, want)
		}
	})
}

func TestExecStdin(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	input := strings.Repeat("line of input\n", 10000) // more than a pipe holds
	got := runSpec(t, in, sandbox.ExecSpec{Args: []string{"sha256sum"}, Stdin: strings.NewReader(input)})
	want := runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "printf 'line of input\\n%.0s' $(seq 10000) | sha256sum"}})
	if got.Stdout != want.Stdout || got.Exit != 0 {
		t.Errorf("sha256sum of stdin = %+v, want %+v", got, want)
	}

	// No Stdin: the command reads an empty input rather than blocking.
	if got := run(t, in, "cat"); got != (result{}) {
		t.Errorf("cat without stdin = %+v, want no output, exit 0", got)
	}

	// Combined output in one buffer, in order.
	var buf bytes.Buffer
	code, err := in.Exec(context.Background(), sandbox.ExecSpec{
		Args: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}, Stdout: &buf, Stderr: &buf})
	if err != nil || code != 0 || buf.String() != "out\nerr\nout2\n" {
		t.Errorf("combined output = %q, %d, %v; want %q, 0, nil", buf.String(), code, err, "out\nerr\nout2\n")
	}

	// Streaming: output arrives while the command still runs, and input
	// reaches it as it is written.
	pr, pw := io.Pipe()
	lines := make(chan string, 2)
	done := make(chan error, 1)
	go func() {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{
			Args:  []string{"sh", "-c", "while read l; do echo got $l; done"},
			Stdin: pr,
			Stdout: writerFunc(func(p []byte) (int, error) {
				lines <- string(p)
				return len(p), nil
			})})
		done <- err
	}()
	for _, l := range []string{"a", "b"} {
		fmt.Fprintln(pw, l)
		if got := <-lines; got != "got "+l+"\n" {
			t.Errorf("streamed output = %q, want %q", got, "got "+l+"\n")
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Errorf("streaming Exec: %v", err)
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	t.Run("not found", func(t *testing.T) {
		for _, c := range []string{"/no/such/command", "no-such-command"} {
			_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{c}})
			if err == nil || !strings.Contains(err.Error(), c) {
				t.Errorf("Exec(%q) = %v, want an error naming it", c, err)
			}
		}
	})
	t.Run("bad dir", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}, Dir: "/no/such/dir"})
		if err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
			t.Errorf("Exec(Dir: missing) = %v, want an error naming it", err)
		}
	})
	t.Run("no args", func(t *testing.T) {
		if _, err := in.Exec(context.Background(), sandbox.ExecSpec{}); !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(no args) = %v, want ErrInvalidSpec", err)
		}
	})
	t.Run("bad env", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}, Env: []string{"NOEQUALS"}})
		if !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(bad env) = %v, want ErrInvalidSpec", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true", strings.Repeat("x", maxMessage)}})
		if !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(huge argument) = %v, want ErrInvalidSpec", err)
		}
		if got := run(t, in, "echo", "alive"); got.Stdout != "alive\n" {
			t.Errorf("after a refused Exec = %+v", got)
		}
	})
	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		// The shell's child, in the same process group, goes too.
		_, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"sh", "-c", "sleep 1001; true"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec(sleep) with deadline = %v, want DeadlineExceeded", err)
		}
		if got := sh(t, in, "ps -eo args= | grep -c '^sleep 1001'"); got.Stdout != "0\n" {
			t.Errorf("sleep still running inside after its context ended: %q", got.Stdout)
		}
	})
	t.Run("background keeps stdout", func(t *testing.T) {
		// Exec returns (after drainIdle) although a background process
		// still holds its stdout.
		got := sh(t, in, "sleep 1000 & echo started")
		if got.Stdout != "started\n" || got.Exit != 0 {
			t.Errorf("background command = %+v, want \"started\\n\", exit 0", got)
		}
	})
}

func TestTTY(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	got := runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "test -t 0 && test -t 1 && stty size && echo $TERM && tty && stat -c %u /proc/self/fd/0"}, TTY: true, Rows: 40, Cols: 100})
	if want := "40 100\r\nxterm-256color\r\n/dev/pts/0\r\n65534\r\n"; got.Exit != 0 || got.Stdout != want {
		t.Errorf("with TTY = %+v, want exit 0, %q", got, want)
	}
	if got := runSpec(t, in, sandbox.ExecSpec{Args: []string{"stty", "size"}, TTY: true}); got.Stdout != "24 80\r\n" {
		t.Errorf("default size = %+v, want 24 80", got)
	}
	if got := sh(t, in, "test -t 0 || test -t 1"); got.Exit != 1 {
		t.Errorf("without TTY: test -t exit %d, want 1", got.Exit)
	}
	// Input typed at the terminal reaches the command.
	got = runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "read line; echo got $line"}, TTY: true, Stdin: strings.NewReader("hello\n")})
	if got.Exit != 0 || !strings.HasSuffix(got.Stdout, "got hello\r\n") {
		t.Errorf("read from TTY = %+v, want output ending in \"got hello\\r\\n\"", got)
	}
	// The command can open its terminal by name, and it is its session's.
	got = runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "echo via-tty > /dev/tty; ps -o tty= -p $$"}, TTY: true})
	if got.Stdout != "via-tty\r\npts/0\r\n" {
		t.Errorf("controlling terminal = %+v, want %q", got, "via-tty\r\npts/0\r\n")
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	const n = 8
	results := make(chan string, n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			// Each sees the files of the others: one filesystem.
			script := fmt.Sprintf("echo %d > /tmp/f%d; sleep 0.2; ls /tmp | wc -l", i, i)
			code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"sh", "-c", script}, Stdout: &out})
			results <- fmt.Sprintf("%d %q %v", code, out.String(), err)
		}()
	}
	var got []string
	for range n {
		got = append(got, <-results)
	}
	want := slices.Repeat([]string{fmt.Sprintf("0 %q <nil>", strconv.Itoa(n)+"\n")}, n)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("concurrent Execs (-want +got):\n%s", diff)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})
	pid := in.cmd.Process.Pid
	sh(t, in, "sleep 1000 >/dev/null 2>&1 & sleep 1001 >/dev/null 2>&1 &")
	procs := nsProcs(t, pid)
	if len(procs) != 3 {
		t.Fatalf("processes in the sandbox = %q, want init and two sleeps", procs)
	}
	namespaces := map[string]string{}
	for _, kind := range []string{"pid", "mnt", "net", "ipc", "uts"} {
		if namespaces[kind], _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); namespaces[kind] == "" {
			t.Fatalf("no %s namespace for the init", kind)
		}
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for kind, ns := range namespaces {
		if procs := procsIn(t, kind, ns); len(procs) != 0 {
			t.Errorf("processes left in the sandbox's %s namespace after Delete: %q", kind, procs)
		}
	}
	// Every mount was made in the sandbox's own namespace: none ever
	// reached the host's.
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), r.scratch) {
		t.Errorf("host mounts mention the state dir %s:\n%s", r.scratch, mi)
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if _, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec after Delete = %v, want ErrNotFound", err)
	}
	// The ID can be used again.
	start(t, r, sandbox.Spec{ID: in.ID()})
}

// Delete ends the commands still running; their Exec returns ErrNotFound.
func TestDeleteDuringExec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in, err := r.Start(context.Background(), sandbox.Spec{ID: testID()})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{
			Args: []string{"sh", "-c", "echo started; exec sleep 1000"}, Stdout: writerFunc(func(p []byte) (int, error) {
				once.Do(func() { close(started) })
				return len(p), nil
			})})
		done <- err
	}()
	<-started
	pid := in.(*Instance).cmd.Process.Pid
	pidNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := <-done; !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec interrupted by Delete = %v, want ErrNotFound", err)
	}
	if procs := procsIn(t, "pid", pidNS); len(procs) != 0 {
		t.Errorf("processes after Delete: %q", procs)
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
	in := start(t, r, sandbox.Spec{})
	if !spares[in.cmd.Process.Pid] {
		t.Errorf("Start used init %d, not a spare (%v)", in.cmd.Process.Pid, spares)
	}
	// Each Start is followed by a new spare (peek fails otherwise).
	for range 5 {
		peek()
		if err := start(t, r, sandbox.Spec{}).Delete(t.Context()); err != nil {
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
	if got := run(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("running sandbox after Close: %+v", got)
	}
	// Start still works, without spares.
	start(t, r, sandbox.Spec{})
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
	in := start(t, r, sandbox.Spec{})
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
	pidNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
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
	in := start(t, r, sandbox.Spec{})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", in.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 0 {
		t.Errorf("init environment = %q, want empty", b)
	}
	if got := run(t, in, "env"); strings.Contains(got.Stdout, "canary") {
		t.Errorf("command environment has the daemon's: %q", got.Stdout)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})
	notNS := filepath.Join(t.TempDir(), "file")
	writeFile(t, notNS, "", 0o644)

	tests := []struct {
		name string
		spec sandbox.Spec
		want error
	}{
		{"id in use", sandbox.Spec{ID: in.ID()}, sandbox.ErrInvalidSpec},
		{"bad id", sandbox.Spec{ID: "../x"}, sandbox.ErrInvalidSpec},
		{"bad env", sandbox.Spec{ID: testID(), Env: []string{"NOEQUALS"}}, sandbox.ErrInvalidSpec},
		{"long hostname", sandbox.Spec{ID: testID(), Hostname: strings.Repeat("h", 65)}, sandbox.ErrInvalidSpec},
		{"relative hide", sandbox.Spec{ID: testID(), Hide: []string{"data"}}, sandbox.ErrInvalidSpec},
		{"hide root", sandbox.Spec{ID: testID(), Hide: []string{"/"}}, sandbox.ErrInvalidSpec},
		{"missing mount", sandbox.Spec{ID: testID(), Mounts: []sandbox.Mount{{Source: "/no/such", Target: "/x"}}}, sandbox.ErrInvalidSpec},
		{"mount on root", sandbox.Spec{ID: testID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/"}}}, sandbox.ErrInvalidSpec},
		{"relative netns", sandbox.Spec{ID: testID(), NetNS: "run/netns/x"}, sandbox.ErrInvalidSpec},
		{"missing netns", sandbox.Spec{ID: testID(), NetNS: "/run/netns/stintest-no-such-ns"}, sandbox.ErrInvalidSpec},
		{"not a netns", sandbox.Spec{ID: testID(), NetNS: notNS}, sandbox.ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(context.Background(), tt.spec); !errors.Is(err, tt.want) {
				t.Errorf("Start(%+v) = %v, want %v", tt.spec, err, tt.want)
			}
		})
	}

	t.Run("fails inside", func(t *testing.T) {
		// A mount target under a file: found only while building the root.
		spec := sandbox.Spec{ID: testID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/etc/passwd/x"}}}
		_, err := r.Start(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), "/etc/passwd/x") {
			t.Errorf("Start(mount under a file) = %v, want an error naming the target", err)
		}
		if got := run(t, in, "echo", "alive"); got.Stdout != "alive\n" {
			t.Errorf("running sandbox after a failed Start: %+v", got)
		}
		r.mu.Lock()
		_, reserved := r.live[spec.ID]
		r.mu.Unlock()
		if reserved {
			t.Errorf("ID %q still reserved after a failed Start", spec.ID)
		}
	})

	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := r.Start(ctx, sandbox.Spec{ID: testID()}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start(cancelled) = %v, want context.Canceled", err)
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
	spec := sandbox.Spec{ID: testID(), Mounts: []sandbox.Mount{{Source: "/usr", Target: "/etc/passwd/x"}}}
	if _, err := r.Start(context.Background(), spec); err == nil {
		t.Fatal("Start(mount under a file) succeeded")
	}
	if got := inits(t); len(got) != 0 {
		t.Errorf("inits after a failed Start: %q", got)
	}
	in := start(t, r, sandbox.Spec{})
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
	bin := filepath.Join(hostDir(t), "namespaces.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, string(data), 0o755)

	t.Run("not root", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = []string{helperEnv + "=new"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandbox.DefaultUID, Gid: sandbox.DefaultGID}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), sandbox.ErrUnavailable.Error()) || !strings.Contains(string(out), "sudo standin serve") {
			t.Errorf("New as uid %d = %q, %v; want ErrUnavailable saying to use sudo", sandbox.DefaultUID, out, err)
		}
	})
	t.Run("no CAP_SYS_ADMIN", func(t *testing.T) {
		cmd := exec.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", bin)
		cmd.Env = []string{helperEnv + "=start"}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "true ") || !strings.Contains(string(out), "CAP_SYS_ADMIN") {
			t.Errorf("Start without CAP_SYS_ADMIN = %q, %v; want ErrUnavailable naming CAP_SYS_ADMIN", out, err)
		}
	})
}

func TestNewWithoutInit(t *testing.T) {
	initCalled.Store(false)
	defer initCalled.Store(true)
	_, err := New(Config{StateDir: t.TempDir()})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "namespaces.Init") {
		t.Errorf("New without Init = %v, want ErrUnavailable naming namespaces.Init", err)
	}
}

// Output written before the command exited reaches a slow writer in full,
// even when delivering it takes longer than drainIdle.
func TestExecSlowWriter(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	var got int
	calls := 0
	w := writerFunc(func(p []byte) (int, error) {
		calls++
		if calls == 1 {
			time.Sleep(drainIdle + 500*time.Millisecond)
		}
		got += len(p)
		return len(p), nil
	})
	code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"head", "-c", "65536", "/dev/zero"}, Stdout: w})
	if err != nil || code != 0 || got != 65536 {
		t.Errorf("Exec(head -c 65536) to a slow writer = %d, %v, %d bytes; want 0, nil, 65536 bytes", code, err, got)
	}
}
