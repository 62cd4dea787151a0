package gvisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/agent"
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
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 1"}, nil, "", result{Stderr: "oops\n", Exit: 1}},
		{"not root", []string{"id", "-u"}, nil, "", result{Stdout: "65534\n"}},
		{"home", []string{"sh", "-c", `echo "$HOME"; pwd`}, nil, "", result{Stdout: "/home/sandbox\n/home/sandbox\n"}},
		{"dir", []string{"pwd"}, nil, "/usr", result{Stdout: "/usr\n"}},
		{"env", []string{"sh", "-c", `echo "$FROM_SPEC $OVERRIDDEN $FROM_EXEC"`},
			[]string{"OVERRIDDEN=exec", "FROM_EXEC=exec"}, "", result{Stdout: "spec exec exec\n"}},
		{"hostname", []string{"hostname"}, nil, "", result{Stdout: "sandbox\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runSpec(t, in, sandbox.ExecSpec{Args: tt.args, Env: tt.env, Dir: tt.dir})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Exec(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
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
}

func TestFilesystem(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	dir := hostDir(t)
	shared := filepath.Join(dir, "shared")
	writeFile(t, shared, "original\n", 0o666)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	in := start(t, r, sandbox.Spec{})

	tests := []struct {
		name   string
		script string
		exit   int
	}{
		{"write tmp", "echo x > /tmp/f && cat /tmp/f", 0},
		{"write var tmp", "echo x > /var/tmp/f && cat /var/tmp/f", 0},
		{"write home", "echo x > $HOME/f && cat $HOME/f", 0},
		{"write dev shm", "echo x > /dev/shm/f && cat /dev/shm/f", 0},
		{"write usr", "echo x > /usr/standin-test", 2},
		{"write etc", "echo x >> /etc/passwd", 2},
		{"read shadow", "cat /etc/shadow", 1},
		{"read root home", "ls /root", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sh(t, in, tt.script); got.Exit != tt.exit {
				t.Errorf("sh -c %q: exit %d, want %d (stderr %q)", tt.script, got.Exit, tt.exit, got.Stderr)
			}
		})
	}

	// A host file the sandbox user may write: the write lands in the
	// sandbox's own layer, never on the host.
	t.Run("overlay", func(t *testing.T) {
		got := sh(t, in, fmt.Sprintf("echo changed > %s && cat %s", shared, shared))
		if got.Exit != 0 || got.Stdout != "changed\n" {
			t.Errorf("write inside = %+v, want \"changed\\n\", exit 0", got)
		}
		b, err := os.ReadFile(shared)
		if err != nil || string(b) != "original\n" {
			t.Errorf("host file after write inside = %q, %v; want %q", b, err, "original\n")
		}
		if _, err := os.Stat("/usr/standin-test"); err == nil {
			t.Error("/usr/standin-test exists on the host")
		}
	})

	// Files written in one sandbox are not seen in another.
	t.Run("separate layers", func(t *testing.T) {
		sh(t, in, "echo mine > /tmp/mine")
		other := start(t, r, sandbox.Spec{})
		if got := sh(t, other, fmt.Sprintf("cat /tmp/mine; cat %s", shared)); got.Stdout != "original\n" {
			t.Errorf("other sandbox sees %q, want only %q", got.Stdout, "original\n")
		}
	})
}

func TestHide(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	dir := hostDir(t)
	hidden := filepath.Join(dir, "data")
	visible := filepath.Join(dir, "visible")
	hiddenFile := filepath.Join(dir, "master.key")
	later := filepath.Join(dir, "later")
	link := filepath.Join(dir, "link")
	for _, d := range []string{hidden, visible} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "secret-canary"), "canary\n", 0o644)
	}
	writeFile(t, hiddenFile, "canary\n", 0o644)
	if err := os.Symlink(hidden, link); err != nil {
		t.Fatal(err)
	}

	in := start(t, r, sandbox.Spec{Hide: []string{link, hiddenFile, later}})
	// Created after the sandbox started: still hidden.
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(later, "secret-canary"), "canary\n", 0o644)

	tests := []struct {
		name   string
		script string
		want   result
	}{
		{"control", "cat " + filepath.Join(visible, "secret-canary"), result{Stdout: "canary\n"}},
		{"dir", "ls -A " + hidden, result{}},
		{"through symlink", "ls -A " + link + "/", result{}},
		{"file", "cat " + hiddenFile, result{}},
		{"created later", "ls -A " + later, result{}},
		{"state dir", "ls -A " + filepath.Dir(r.Root()), result{}},
		{"not writable", "touch " + hidden + "/x 2>/dev/null", result{Exit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sh(t, in, tt.script); got != tt.want {
				t.Errorf("sh -c %q = %+v, want %+v", tt.script, got, tt.want)
			}
		})
	}
}

func TestMounts(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	dir := hostDir(t)
	resolv := filepath.Join(dir, "resolv.conf")
	writeFile(t, resolv, "nameserver 100.96.0.1\n", 0o644)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	in := start(t, r, sandbox.Spec{Mounts: []sandbox.Mount{
		{Source: resolv, Target: "/etc/resolv.conf"},
		{Source: resolv, Target: "/etc/standin/new-file"}, // target missing on the host
		{Source: work, Target: "/home/sandbox/work", Writable: true},
	}})
	if got := sh(t, in, "cat /etc/resolv.conf /etc/standin/new-file"); got.Stdout != "nameserver 100.96.0.1\nnameserver 100.96.0.1\n" {
		t.Errorf("mounted files = %+v", got)
	}
	if got := sh(t, in, "echo x >> /etc/resolv.conf"); got.Exit == 0 {
		t.Error("read-only mount was writable")
	}
	if got := sh(t, in, "echo out > work/f"); got.Exit != 0 {
		t.Errorf("write to writable mount = %+v", got)
	}
	if b, err := os.ReadFile(filepath.Join(work, "f")); err != nil || string(b) != "out\n" {
		t.Errorf("host file written through mount = %q, %v; want %q", b, err, "out\n")
	}
}

func TestSockets(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	// Sockets are only created, never connected: on these machines vsock
	// reaches the hypervisor's host.
	tests := []struct {
		name   string
		create string
		ok     bool
	}{
		{"control tcp", "socket.AF_INET, socket.SOCK_STREAM", true},
		{"control udp", "socket.AF_INET, socket.SOCK_DGRAM", true},
		{"control unix", "socket.AF_UNIX, socket.SOCK_STREAM", true},
		{"vsock stream", "socket.AF_VSOCK, socket.SOCK_STREAM", false},
		{"vsock dgram", "socket.AF_VSOCK, socket.SOCK_DGRAM", false},
		{"raw icmp", "socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP", false},
		{"raw ipv6", "socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6", false},
		{"packet", "socket.AF_PACKET, socket.SOCK_RAW, 0", false},
		{"packet dgram", "socket.AF_PACKET, socket.SOCK_DGRAM, 0", false},
		{"netlink", "socket.AF_NETLINK, socket.SOCK_RAW, 0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, in, "/usr/bin/python3", "-c", "import socket; socket.socket("+tt.create+")")
			if (got.Exit == 0) != tt.ok {
				t.Errorf("socket(%s): exit %d (stderr %q), want success %v", tt.create, got.Exit, got.Stderr, tt.ok)
			}
		})
	}
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	got := sh(t, in, `for p in /proc/[0-9]*; do printf '%s ' "${p#/proc/}"; tr '\0' ' ' < $p/cmdline; echo; done`)
	if got.Exit != 0 {
		t.Fatalf("listing /proc: %+v", got)
	}
	lines := strings.Split(strings.TrimSpace(got.Stdout), "\n")
	self := strconv.Itoa(os.Getpid())
	for _, l := range lines {
		pid, cmdline, _ := strings.Cut(l, " ")
		if strings.Contains(cmdline, "runsc") || strings.Contains(cmdline, filepath.Base(os.Args[0])) || pid == self && pid != "1" {
			t.Errorf("host process visible inside: %q", l)
		}
	}
	// init (sh), its sleep, the listing shell, and its tr.
	if len(lines) > 5 {
		t.Errorf("%d processes inside, want at most 5:\n%s", len(lines), got.Stdout)
	}

	// Orphans are reaped by the sandbox's init.
	sh(t, in, "sleep 0.1 &")
	time.Sleep(300 * time.Millisecond)
	if z := sh(t, in, "ps -eo stat= | grep -c Z"); z.Stdout != "0\n" {
		t.Errorf("zombies inside: %q, want 0", z.Stdout)
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	t.Run("not found", func(t *testing.T) {
		_, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"/no/such/command"}})
		if err == nil || !strings.Contains(err.Error(), "/no/such/command") {
			t.Errorf("Exec(missing command) = %v, want an error naming it", err)
		}
	})
	t.Run("no args", func(t *testing.T) {
		if _, err := in.Exec(context.Background(), sandbox.ExecSpec{}); !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("Exec(no args) = %v, want ErrInvalidSpec", err)
		}
	})
	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := in.Exec(ctx, sandbox.ExecSpec{Args: []string{"sleep", "1000"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec(sleep) with deadline = %v, want DeadlineExceeded", err)
		}
		if got := sh(t, in, "ps -eo args= | grep -c '^sleep 1000'"); got.Stdout != "0\n" {
			t.Errorf("sleep still running inside after its context ended: %q", got.Stdout)
		}
	})
	t.Run("background keeps stdout", func(t *testing.T) {
		// Exec returns (after drainTimeout) although a background process
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

	got := runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "test -t 0 && test -t 1 && stty size && echo $TERM"}, TTY: true, Rows: 40, Cols: 100})
	if got.Exit != 0 || got.Stdout != "40 100\r\nxterm-256color\r\n" {
		t.Errorf("with TTY = %+v, want exit 0, \"40 100\\r\\nxterm-256color\\r\\n\"", got)
	}
	if got := sh(t, in, "test -t 0 || test -t 1"); got.Exit != 1 {
		t.Errorf("without TTY: test -t exit %d, want 1", got.Exit)
	}
	// Input typed at the terminal reaches the command.
	got = runSpec(t, in, sandbox.ExecSpec{Args: []string{"sh", "-c", "read line; echo got $line"}, TTY: true, Stdin: strings.NewReader("hello\n")})
	if got.Exit != 0 || !strings.HasSuffix(got.Stdout, "got hello\r\n") {
		t.Errorf("read from TTY = %+v, want output ending in \"got hello\\r\\n\"", got)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if procs := runscProcs(t, r.Root()); len(procs) != 0 {
		t.Fatalf("runsc processes before start: %q", procs)
	}
	in, err := r.Start(context.Background(), sandbox.Spec{ID: testID()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if procs := runscProcs(t, r.Root()); len(procs) == 0 {
		t.Fatal("no runsc process found for a running sandbox: the count below proves nothing")
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if procs := runscProcs(t, r.Root()); len(procs) != 0 {
		t.Errorf("runsc processes after Delete: %q", procs)
	}
	if _, err := os.Stat(filepath.Join(r.bundles, in.ID())); err == nil {
		t.Error("bundle left after Delete")
	}
	if err := in.Delete(context.Background()); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if _, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"true"}}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec after Delete = %v, want ErrNotFound", err)
	}
}

// A daemon that restarts finds the sandboxes of the previous one and
// removes them, but not its own.
func TestCleanup(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	old, err := New(Config{Runsc: runscBin(t), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	stale := start(t, old, sandbox.Spec{})

	r, err := New(Config{Runsc: runscBin(t), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	mine := start(t, r, sandbox.Spec{})
	before := len(runscProcs(t, r.Root()))

	removed, err := r.Cleanup(context.Background())
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if diff := cmp.Diff([]string{stale.ID()}, removed); diff != "" {
		t.Errorf("Cleanup removed (-want +got):\n%s", diff)
	}
	after := len(runscProcs(t, r.Root()))
	if after == 0 || after >= before {
		t.Errorf("runsc processes: %d before Cleanup, %d after; want fewer, not none", before, after)
	}
	if got := run(t, mine, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("own sandbox after Cleanup: %+v", got)
	}
	if removed, err := r.Cleanup(context.Background()); err != nil || len(removed) != 0 {
		t.Errorf("second Cleanup = %q, %v; want nothing", removed, err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	tests := []struct {
		name string
		spec sandbox.Spec
		want error
	}{
		{"id in use", sandbox.Spec{ID: in.ID()}, sandbox.ErrInvalidSpec},
		{"bad id", sandbox.Spec{ID: "../x"}, sandbox.ErrInvalidSpec},
		{"bad env", sandbox.Spec{ID: testID(), Env: []string{"NOEQUALS"}}, sandbox.ErrInvalidSpec},
		{"relative hide", sandbox.Spec{ID: testID(), Hide: []string{"data"}}, sandbox.ErrInvalidSpec},
		{"missing mount", sandbox.Spec{ID: testID(), Mounts: []sandbox.Mount{{Source: "/no/such", Target: "/x"}}}, sandbox.ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Start(context.Background(), tt.spec); !errors.Is(err, tt.want) {
				t.Errorf("Start(%+v) = %v, want %v", tt.spec, err, tt.want)
			}
		})
	}

	t.Run("netns missing", func(t *testing.T) {
		spec := sandbox.Spec{ID: testID(), NetNS: "/run/netns/standin-no-such-ns"}
		if _, err := r.Start(context.Background(), spec); err == nil {
			t.Fatal("Start with a missing netns succeeded")
		}
		if procs := runscProcs(t, r.Root()); len(procs) == 0 {
			t.Error("the running sandbox's processes are gone")
		}
		if _, err := os.Stat(filepath.Join(r.bundles, spec.ID)); err == nil {
			t.Error("bundle left after a failed Start")
		}
	})
}

func TestNewErrors(t *testing.T) {
	_, err := New(Config{Runsc: filepath.Join(t.TempDir(), "runsc"), StateDir: t.TempDir()})
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "make runsc") {
		t.Errorf("New(missing runsc) = %v, want ErrUnavailable saying `make runsc`", err)
	}
	_, err = New(Config{Runsc: runscBin(t), StateDir: t.TempDir(), Overlay: "disk"})
	if !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("New(Overlay: disk) = %v, want ErrInvalidSpec", err)
	}
}

func TestNetNS(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	ns, tun := testNetNS(t)

	in := start(t, r, sandbox.Spec{NetNS: ns})
	const listIfaces = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
	if got := run(t, in, "/usr/bin/python3", "-c", listIfaces); got.Stdout != "['lo', 'tun0']\n" {
		t.Errorf("interfaces with NetNS = %+v, want lo and tun0", got)
	}

	// A connection to any address leaves through the TUN device: the
	// gateway's address here, inside a namespace with nothing else in it.
	done := make(chan result, 1)
	go func() {
		done <- run(t, in, "/usr/bin/python3", "-c",
			"import socket; s = socket.socket(); s.settimeout(3); s.connect_ex(('100.96.0.1', 80))")
	}()
	if err := tun.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	var seen []string
	for {
		n, err := tun.Read(buf)
		if err != nil {
			t.Fatalf("no TCP SYN to 100.96.0.1:80 on the TUN device (saw %q): %v", seen, err)
		}
		p := buf[:n]
		if n >= 24 && p[0]>>4 == 4 && p[9] == 6 && bytes.Equal(p[16:20], []byte{100, 96, 0, 1}) {
			ihl := int(p[0]&0xf) * 4
			if port := int(p[ihl+2])<<8 | int(p[ihl+3]); port == 80 {
				break
			}
		}
		seen = append(seen, fmt.Sprintf("%x", p[:min(n, 20)]))
	}
	<-done

	alone := start(t, r, sandbox.Spec{})
	if got := run(t, alone, "/usr/bin/python3", "-c", listIfaces); got.Stdout != "['lo']\n" {
		t.Errorf("interfaces without NetNS = %+v, want only lo", got)
	}
}

// The daemon's API, whether on a Unix socket or a loopback port, cannot be
// reached from inside even when nothing hides it.
func TestDaemonUnreachable(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	dir := hostDir(t)
	sock := filepath.Join(dir, "api.sock")
	unixLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	accepted := make(chan string, 2)
	for _, ln := range []net.Listener{unixLn, tcpLn} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- ln.Addr().String()
				c.Close()
			}
		}()
	}
	in := start(t, r, sandbox.Spec{})

	port := strconv.Itoa(tcpLn.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name, script string
	}{
		{"unix socket", "import socket; s = socket.socket(socket.AF_UNIX); s.connect('" + sock + "')"},
		{"loopback port", "import socket; socket.create_connection(('127.0.0.1', " + port + "), timeout=2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, in, "/usr/bin/python3", "-c", tt.script); got.Exit == 0 {
				t.Errorf("%s: connected from inside (%+v)", tt.script, got)
			}
		})
	}
	select {
	case addr := <-accepted:
		t.Errorf("listener %s accepted a connection from the sandbox", addr)
	default:
	}
	// The socket is there, and usable from the host: the test can fail.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// runsc's host processes get a clean environment, not the daemon's (which
// may hold the master key).
func TestRunscEnvironment(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	start(t, r, sandbox.Spec{})
	procs := runscProcs(t, r.Root())
	if len(procs) == 0 {
		t.Fatal("no runsc process found")
	}
	for _, p := range procs {
		pid, _, _ := strings.Cut(p, ":")
		b, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			// runsc passes its own RUNSC_* variables to its children.
			if kv != defaultPath && !strings.HasPrefix(kv, "RUNSC_") {
				t.Errorf("environment of %s has %q, want only PATH and RUNSC_*", p, kv)
			}
		}
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	const n = 4
	results := make(chan string, n)
	for i := range n {
		go func() {
			var out bytes.Buffer
			code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"echo", strconv.Itoa(i)}, Stdout: &out})
			results <- fmt.Sprintf("%d %q %v", code, out.String(), err)
		}()
	}
	var got []string
	for range n {
		got = append(got, <-results)
	}
	for i := range n {
		want := fmt.Sprintf("0 %q <nil>", strconv.Itoa(i)+"\n")
		if !slices.Contains(got, want) {
			t.Errorf("concurrent Execs = %q, want one to be %q", got, want)
		}
	}
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
	if err := in.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := <-done; !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Exec interrupted by Delete = %v, want ErrNotFound", err)
	}
	if procs := runscProcs(t, r.Root()); len(procs) != 0 {
		t.Errorf("runsc processes after Delete: %q", procs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The writable layer can live on disk instead of in memory.
func TestOverlayDir(t *testing.T) {
	t.Parallel()
	overlay := filepath.Join(t.TempDir(), "overlay")
	r, err := New(Config{Runsc: runscBin(t), StateDir: t.TempDir(), Overlay: overlay, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir := hostDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	in := start(t, r, sandbox.Spec{})
	f := filepath.Join(dir, "new")
	if got := sh(t, in, "head -c 1000000 /dev/zero > "+f+" && wc -c < "+f); got.Stdout != "1000000\n" {
		t.Errorf("write to the overlay = %+v, want 1000000 bytes", got)
	}
	if _, err := os.Stat(f); err == nil {
		t.Errorf("%s written through to the host", f)
	}
	if got := sh(t, in, "ls -A "+overlay); got != (result{}) {
		t.Errorf("overlay dir visible inside: %+v", got)
	}
}

// Output written before the command exited reaches a slow writer in full,
// even when delivering it takes longer than agent.DrainIdle.
func TestExecSlowWriter(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	var got int
	calls := 0
	w := writerFunc(func(p []byte) (int, error) {
		calls++
		if calls == 1 {
			time.Sleep(agent.DrainIdle + 500*time.Millisecond)
		}
		got += len(p)
		return len(p), nil
	})
	code, err := in.Exec(context.Background(), sandbox.ExecSpec{Args: []string{"head", "-c", "65536", "/dev/zero"}, Stdout: w})
	if err != nil || code != 0 || got != 65536 {
		t.Errorf("Exec(head -c 65536) to a slow writer = %d, %v, %d bytes; want 0, nil, 65536 bytes", code, err, got)
	}
}
