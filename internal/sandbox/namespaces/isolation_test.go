package namespaces

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

func TestPrivileges(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	// What the kernel says about a command, and about the init.
	const fields = `grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' %s | tr -s '\t' ' '`
	got := sh(t, in, fmt.Sprintf(fields, "/proc/self/status"))
	want := strings.Join([]string{
		"Uid: 65534 65534 65534 65534",
		"Gid: 65534 65534 65534 65534",
		"Groups: ",
		"CapInh: 0000000000000000",
		"CapPrm: 0000000000000000",
		"CapEff: 0000000000000000",
		"CapBnd: 0000000000000000",
		"CapAmb: 0000000000000000",
		"NoNewPrivs: 1",
		"Seccomp: 2",
		"",
	}, "\n")
	if got.Stdout != want {
		t.Errorf("command's status:\n%s\nwant:\n%s", got.Stdout, want)
	}
	// The init too, on every thread: it is the sandbox user. (Only the
	// thread that forks commands has an empty bounding set, and it is
	// /proc/1/status.)
	got = sh(t, in, fmt.Sprintf(fields, "/proc/1/status"))
	if got.Stdout != want {
		t.Errorf("init's status:\n%s\nwant:\n%s", got.Stdout, want)
	}
	got = sh(t, in, `for t in /proc/1/task/*; do grep -E '^(Uid|CapPrm|CapEff|NoNewPrivs|Seccomp):' $t/status | tr -s '\t' ' '; echo; done`)
	threads := strings.Split(strings.TrimSpace(got.Stdout), "\n\n")
	wantThread := "Uid: 65534 65534 65534 65534\nCapPrm: 0000000000000000\nCapEff: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2"
	if len(threads) < 2 {
		t.Errorf("init's threads = %q, want several (a Go runtime)", threads)
	}
	for i, th := range threads {
		if th != wantThread {
			t.Errorf("init's thread %d:\n%s\nwant:\n%s", i, th, wantThread)
		}
	}
	// Its files and memory are out of reach (it is not dumpable).
	for _, cmd := range []string{"cat /proc/1/environ", "head -c 1 /proc/1/mem", "ls /proc/1/root/", "ls /proc/1/fd/", "readlink /proc/1/exe"} {
		if got := sh(t, in, cmd); got.Exit == 0 {
			t.Errorf("%s inside = %+v, want failure", cmd, got)
		}
	}
	// Signals from the commands do not end it, and with it the sandbox.
	if got := sh(t, in, "for s in TERM INT HUP QUIT USR1 SEGV ABRT; do kill -$s 1; done; sleep 0.2; echo alive"); got.Stdout != "alive\n" {
		t.Errorf("signals to the init: %+v", got)
	}
	if got := run(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("after signals to the init: %+v", got)
	}
	// Set-user-ID programs do not raise privileges.
	if got := sh(t, in, "su -c id root </dev/null; passwd -S root"); got.Exit == 0 || strings.Contains(got.Stdout, "uid=0") {
		t.Errorf("setuid programs = %+v, want failure", got)
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
		{"dev null", "echo x > /dev/null && head -c 4 /dev/urandom | wc -c | grep -qx 4", 0},
		{"write root", "echo x > /standin-test", 2},
		{"write usr", "echo x > /usr/standin-test", 2},
		{"write etc", "echo x >> /etc/passwd", 2},
		{"write dev", "echo x > /dev/standin-test", 2},
		{"mknod", "mknod /tmp/null c 1 3", 1},
		{"read shadow", "cat /etc/shadow", 1},
		{"read root home", "ls /root", 2},
		{"host tmp not seen", "test ! -e " + t.TempDir(), 0},
		{"home owned", "test \"$(stat -c %u:%a $HOME)\" = 65534:700", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each in a sandbox as it starts, except for the files the
			// earlier cases wrote.
			if got := sh(t, in, tt.script); got.Exit != tt.exit {
				t.Errorf("sh -c %q: exit %d, want %d (stderr %q)", tt.script, got.Exit, tt.exit, got.Stderr)
			}
		})
	}
	if _, err := os.Stat("/standin-test"); err == nil {
		t.Error("/standin-test exists on the host")
	}

	// A host file the sandbox user may write: the write lands in the
	// sandbox's own layer, never on the host.
	t.Run("overlay", func(t *testing.T) {
		got := sh(t, in, fmt.Sprintf("echo changed > %s && cat %s && echo new > %s/new", shared, shared, dir))
		if got.Exit != 0 || got.Stdout != "changed\n" {
			t.Errorf("write inside = %+v, want \"changed\\n\", exit 0", got)
		}
		b, err := os.ReadFile(shared)
		if err != nil || string(b) != "original\n" {
			t.Errorf("host file after write inside = %q, %v; want %q", b, err, "original\n")
		}
		if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
			t.Error("file made inside exists on the host")
		}
	})

	// Files written in one sandbox are not seen in another, nor once the
	// sandbox is deleted.
	t.Run("separate layers", func(t *testing.T) {
		id := testID()
		a := start(t, r, sandbox.Spec{ID: id})
		write := fmt.Sprintf("echo mine > /tmp/mine && echo mine > $HOME/mine && echo mine > %s && cat /tmp/mine $HOME/mine %s", shared, shared)
		if got := sh(t, a, write); got.Stdout != "mine\nmine\nmine\n" {
			t.Fatalf("writing = %+v", got)
		}
		const read = "cat /tmp/mine $HOME/mine %s 2>/dev/null"
		if got := sh(t, in, fmt.Sprintf(read, shared)); got.Stdout != "changed\n" {
			t.Errorf("other sandbox sees %q, want only its own %q", got.Stdout, "changed\n")
		}
		if err := a.Delete(t.Context()); err != nil {
			t.Fatal(err)
		}
		again := start(t, r, sandbox.Spec{ID: id})
		if got := sh(t, again, fmt.Sprintf(read, shared)); got.Stdout != "original\n" {
			t.Errorf("after Delete, a sandbox of the same ID sees %q, want only %q", got.Stdout, "original\n")
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
		{"file size", "stat -c %s " + hiddenFile, result{Stdout: "0\n"}},
		{"created later", "ls -A " + later, result{}},
		{"not writable", "touch " + hidden + "/x 2>/dev/null", result{Exit: 1}},
		{"read-only", "awk '$2 == \"" + hidden + "\" || $2 == \"" + hiddenFile + "\" { split($4, o, \",\"); print o[1] }' /proc/mounts", result{Stdout: "ro\nro\n"}},
		{"file not writable", "{ echo x > " + hiddenFile + "; } 2>/dev/null", result{Exit: 2}},
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
	// A target that is a dangling symlink on the host, as /etc/resolv.conf
	// is under systemd-resolved: the mount lands where it points.
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "run", "stub-resolv.conf"), dangling); err != nil {
		t.Fatal(err)
	}
	in := start(t, r, sandbox.Spec{Hide: []string{dir + "/hidden"}, Mounts: []sandbox.Mount{
		{Source: resolv, Target: "/etc/resolv.conf"},
		{Source: resolv, Target: "/etc/standin/new-file"}, // target missing on the host
		{Source: resolv, Target: dangling},
		{Source: work, Target: "/home/sandbox/work", Writable: true},
		{Source: resolv, Target: dir + "/hidden/resolv.conf"}, // after Hide
	}})
	want := strings.Repeat("nameserver 100.96.0.1\n", 4)
	if got := sh(t, in, "cat /etc/resolv.conf /etc/standin/new-file "+dangling+" "+dir+"/hidden/resolv.conf"); got.Stdout != want {
		t.Errorf("mounted files = %+v, want %q", got, want)
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
	if _, err := os.Lstat(filepath.Join(dir, "run")); err == nil {
		t.Error("mount point made on the host")
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
	// The init, the listing shell and its tr; the shell forks for the
	// command substitution-free loop, so nothing else.
	if len(lines) > 3 || !strings.HasPrefix(lines[0], "1 "+initName+" ") {
		t.Errorf("processes inside:\n%s\nwant the init as 1 and the listing shell", got.Stdout)
	}
	self := strconv.Itoa(os.Getpid())
	for _, l := range lines {
		pid, cmdline, _ := strings.Cut(l, " ")
		if pid == self || strings.Contains(cmdline, filepath.Base(os.Args[0])) {
			t.Errorf("host process visible inside: %q", l)
		}
	}
	// The host's processes, by their pids: the test's own is one.
	if got := sh(t, in, "test -e /proc/"+self); got.Exit == 0 && self != "1" {
		t.Errorf("/proc/%s (the test process) exists inside", self)
	}

	// Orphans are reaped by the sandbox's init.
	sh(t, in, "sleep 0.1 & sleep 0.1 &")
	got = sh(t, in, "sleep 0.5; ps -eo stat= | grep -c Z")
	if got.Stdout != "0\n" {
		t.Errorf("zombies inside: %q, want 0", got.Stdout)
	}

	// IPC objects of the host are not seen.
	shm, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(shm, unix.IPC_RMID, nil)
	if b, err := os.ReadFile("/proc/sysvipc/shm"); err != nil || !strings.Contains(string(b), " "+strconv.Itoa(shm)+" ") {
		t.Fatalf("host shared memory segment %d not listed on the host: %q, %v", shm, b, err)
	}
	if got := sh(t, in, "wc -l < /proc/sysvipc/shm"); got.Stdout != "1\n" {
		t.Errorf("System V shared memory inside = %q lines, want only the header", got.Stdout)
	}
}

// The seccomp filter: system calls the sandbox user could otherwise make.
// Each case runs on the host first, as a control, where it is allowed.
func TestSeccomp(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := start(t, r, sandbox.Spec{})

	// prelude gives sc(nr, args...): the errno name of a raw system call,
	// or "ok".
	const prelude = `
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
bufs = []
def buf(b):
    bufs.append(ctypes.create_string_buffer(b))
    return ctypes.addressof(bufs[-1])
def sock(*args):
    try:
        socket.socket(*args).close()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
`
	// Sockets are only created, never connected: on these machines vsock
	// reaches the hypervisor's host. No vsock socket is made on the host,
	// not even as a control.
	tests := []struct {
		name   string
		code   string
		want   string // inside
		onHost string // "" if not run on the host
	}{
		{"tcp", "sock(socket.AF_INET, socket.SOCK_STREAM)", "ok", "ok"},
		{"udp", "sock(socket.AF_INET6, socket.SOCK_DGRAM)", "ok", "ok"},
		{"unix", "sock(socket.AF_UNIX, socket.SOCK_STREAM)", "ok", "ok"},
		{"netlink", "sock(socket.AF_NETLINK, socket.SOCK_RAW, 0)", "ok", "ok"},
		{"vsock stream", "sock(socket.AF_VSOCK, socket.SOCK_STREAM)", "EAFNOSUPPORT", ""},
		{"vsock dgram", "sock(socket.AF_VSOCK, socket.SOCK_DGRAM)", "EAFNOSUPPORT", ""},
		{"packet", "sock(socket.AF_PACKET, socket.SOCK_RAW, 0)", "EAFNOSUPPORT", "ok"},
		{"packet dgram", "sock(socket.AF_PACKET, socket.SOCK_DGRAM, 0)", "EAFNOSUPPORT", "ok"},
		{"raw icmp", "sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)", "EPERM", "ok"},
		{"raw ipv6", "sock(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)", "EPERM", "ok"},
		{"sock_packet", "sock(socket.AF_INET, 10, 0x0300)", "EPERM", "ok"},
		{"io_uring_setup", "sc(425, 4, buf(120))", "EPERM", "ok"},
		{"io_uring_enter", "sc(426, -1, 0, 0, 0, 0, 0)", "EPERM", "EBADF"},
		{"io_uring_register", "sc(427, -1, 0, 0, 0)", "EPERM", "EINVAL"},
		{"unshare user", "sc(272, 0x10000000)", "EPERM", "ok"},
		{"unshare mount", "sc(272, 0x20000)", "EPERM", ""},
		{"clone newuser", "(lambda r: os._exit(0) if r == 0 else (os.wait(), 'ok')[1] if r > 0 else errno.errorcode[ctypes.get_errno()])(libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0))", "EPERM", "ok"},
		{"clone3", "sc(435, 0, 0)", "ENOSYS", "EINVAL"},
		{"setns", "sc(308, os.open('/proc/self/ns/uts', os.O_RDONLY), 0)", "EPERM", "ok"},
		{"mount", "sc(165, 0, 0, 0, 0, 0)", "EPERM", ""},
		{"ptrace", "sc(101, 0, 0, 0, 0)", "EPERM", ""},
		{"keyctl", "sc(250, 0, -3, 0)", "EPERM", "ok"},
		{"add_key", "sc(248, 0, 0, 0, 0, 0)", "EPERM", "EFAULT"},
		{"bpf", "sc(321, 0, 0, 0)", "EPERM", ""},
		{"perf_event_open", "sc(298, 0, 0, -1, -1, 0)", "EPERM", ""},
		{"userfaultfd", "sc(323, 1)", "EPERM", "ok"},
		{"personality no aslr", "sc(135, 0x0040000)", "EPERM", "ok"},
		{"personality query", "sc(135, 0xffffffff)", "ok", "ok"},
		{"chroot", "sc(161, buf(b'/'))", "EPERM", "ok"},
		{"tiocsti", "sc(16, 0, 0x5412, buf(b'x'))", "EPERM", "ENOTTY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := prelude + "print(" + tt.code + ")"
			if tt.onHost != "" {
				out, err := exec.Command("/usr/bin/python3", "-c", prog).CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != tt.onHost {
					t.Fatalf("control on the host: %s = %q, %v; want %q", tt.code, out, err, tt.onHost)
				}
			}
			if got := python(t, in, prog); got.Stdout != tt.want+"\n" || got.Exit != 0 {
				t.Errorf("%s inside = %+v, want %q", tt.code, got, tt.want)
			}
		})
	}

	// An x32 system call kills the process: its numbers mean other calls
	// than the filter checks. (So does a 32-bit one, int 0x80, which
	// TestFilter checks: on these machines the kernel faults on it before
	// seccomp runs.)
	t.Run("x32 abi", func(t *testing.T) {
		prog := prelude + "print(sc(0x40000000 + 39))"
		out, err := exec.Command("/usr/bin/python3", "-c", prog).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ENOSYS" {
			t.Fatalf("control on the host = %q, %v; want ENOSYS", out, err)
		}
		const sigsys = 31
		if got := python(t, in, prog); got.Exit != 128+sigsys {
			t.Errorf("inside = %+v, want killed by SIGSYS (exit %d)", got, 128+sigsys)
		}
	})
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	const listIfaces = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"

	// The sandbox's namespace has a veth to a peer namespace made here,
	// where a server listens; nothing else is reachable from it.
	name, path := testNetNS(t, "sbx")
	peerName, peerPath := testNetNS(t, "peer")
	ip(t, "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", peerName)
	ip(t, "-n", name, "addr", "add", "10.213.0.1/30", "dev", "veth0")
	ip(t, "-n", name, "link", "set", "veth0", "up")
	ip(t, "-n", peerName, "addr", "add", "10.213.0.2/30", "dev", "veth1")
	ip(t, "-n", peerName, "link", "set", "veth1", "up")
	var ln net.Listener
	inNetNS(t, peerPath, func() (err error) {
		ln, err = net.Listen("tcp", "10.213.0.2:0")
		return err
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the peer"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	fetch := fmt.Sprintf(`import socket
try:
    print(socket.create_connection(("10.213.0.2", %d), timeout=5).recv(100).decode())
except OSError as e:
    print(type(e).__name__)`, port)

	in := start(t, r, sandbox.Spec{NetNS: path})
	if got := python(t, in, listIfaces); got.Stdout != "['lo', 'veth0']\n" {
		t.Errorf("interfaces with NetNS = %+v, want lo and veth0", got)
	}
	if got := python(t, in, fetch); got.Stdout != "hello from the peer\n" {
		t.Errorf("connect to the peer with NetNS = %+v", got)
	}

	alone := start(t, r, sandbox.Spec{})
	if got := python(t, alone, listIfaces); got.Stdout != "['lo']\n" {
		t.Errorf("interfaces without NetNS = %+v, want only lo", got)
	}
	if got := python(t, alone, fetch); got.Stdout != "OSError\n" {
		t.Errorf("connect to the peer without NetNS = %+v, want OSError (unreachable)", got)
	}
	// lo is up in the new namespace.
	const loopback = `import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname(), timeout=5); a, _ = s.accept(); a.send(b"lo up"); print(c.recv(10).decode())`
	if got := python(t, alone, loopback); got.Stdout != "lo up\n" {
		t.Errorf("loopback without NetNS = %+v", got)
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
	abstract, err := net.Listen("unix", "@standin-test-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer abstract.Close()
	accepted := make(chan string, 3)
	for _, ln := range []net.Listener{unixLn, tcpLn, abstract} {
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
		{"abstract socket", "import socket; s = socket.socket(socket.AF_UNIX); s.connect('\\0" + abstract.Addr().String()[1:] + "')"},
		{"loopback port", "import socket; socket.create_connection(('127.0.0.1', " + port + "), timeout=2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := python(t, in, tt.script); got.Exit == 0 {
				t.Errorf("%s: connected from inside (%+v)", tt.script, got)
			}
		})
	}
	select {
	case addr := <-accepted:
		t.Errorf("listener %s accepted a connection from the sandbox", addr)
	default:
	}
	// The sockets are there, and usable from the host: the test can fail.
	for _, addr := range []string{sock, abstract.Addr().String()} {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}
