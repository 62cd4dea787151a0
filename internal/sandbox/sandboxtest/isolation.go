package sandboxtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

// Commands run as the sandbox user, with no capabilities, and set-user-ID
// programs do not change that.
func (s *suite) testPrivileges(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	got := Sh(t, in, `grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd)):' /proc/self/status | tr -s '\t' ' '`)
	want := strings.Join([]string{
		"Uid: 65534 65534 65534 65534",
		"Gid: 65534 65534 65534 65534",
		"Groups: ",
		"CapInh: 0000000000000000",
		"CapPrm: 0000000000000000",
		"CapEff: 0000000000000000",
		"CapBnd: 0000000000000000",
		"",
	}, "\n")
	if got.Stdout != want {
		t.Errorf("command's status:\n%s\nwant:\n%s", got.Stdout, want)
	}
	// And any other set (CapAmb, where the kernel shows it).
	if got := Sh(t, in, `grep -E '^Cap' /proc/self/status | grep -v '\s0000000000000000$'`); got.Stdout != "" {
		t.Errorf("capabilities of a command: %q, want none", got.Stdout)
	}
	if got := Sh(t, in, "su -c id root </dev/null; passwd -S root"); got.Exit == 0 || strings.Contains(got.Stdout, "uid=0") {
		t.Errorf("setuid programs = %+v, want failure", got)
	}
}

// /proc shows the sandbox's processes only, orphans are reaped, and the
// host's IPC objects are not seen.
func (s *suite) testProcesses(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	got := Sh(t, in, `for p in /proc/[0-9]*; do printf '%s ' "${p#/proc/}"; tr '\0' ' ' < $p/cmdline; echo; done`)
	if got.Exit != 0 {
		t.Fatalf("listing /proc: %+v", got)
	}
	lines := strings.Split(strings.TrimSpace(got.Stdout), "\n")
	// The sandbox's first process as 1, the listing shell and its tr:
	// the glob is expanded before any tr starts.
	if len(lines) > 3 || !strings.HasPrefix(lines[0], "1 ") {
		t.Errorf("processes inside:\n%s\nwant the sandbox's own 1 and the listing shell", got.Stdout)
	}
	self := strconv.Itoa(os.Getpid())
	for _, l := range lines {
		pid, cmdline, _ := strings.Cut(l, " ")
		if pid == self && pid != "1" || strings.Contains(cmdline, filepath.Base(os.Args[0])) || strings.Contains(cmdline, "runsc") {
			t.Errorf("host process visible inside: %q", l)
		}
	}
	// The host's processes, by their pids: the test's own is one.
	if got := Sh(t, in, "test -e /proc/"+self); got.Exit == 0 && self != "1" {
		t.Errorf("/proc/%s (the test process) exists inside", self)
	}

	t.Run("orphans reaped", func(t *testing.T) {
		Sh(t, in, "sleep 0.1 & sleep 0.1 &")
		if got := Sh(t, in, "sleep 0.5; ps -eo stat= | grep -c Z"); got.Stdout != "0\n" {
			t.Errorf("zombies inside: %q, want 0", got.Stdout)
		}
	})

	t.Run("ipc", func(t *testing.T) {
		// A segment anyone may use, found by its key on the host and not
		// inside.
		key := 0x5354_0000 | os.Getpid()&0xffff
		shm, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o666)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.SysvShmCtl(shm, unix.IPC_RMID, nil)
		if id, err := unix.SysvShmGet(key, 0, 0); err != nil || id != shm {
			t.Fatalf("host shared memory segment %#x not found on the host: %d, %v", key, id, err)
		}
		prog := fmt.Sprintf(`import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
print("found" if libc.shmget(%d, 0, 0) >= 0 else errno.errorcode[ctypes.get_errno()])`, key)
		if got := Python(t, in, prog); got.Stdout != "ENOENT\n" {
			t.Errorf("host shared memory segment %#x from inside = %+v, want ENOENT", key, got)
		}
	})
}

// Sockets that reach past the sandbox's network namespace, or that need
// privileges, cannot be created.
func (s *suite) testSockets(t *testing.T) {
	in := Start(t, s.cfg.New(t), sandbox.Spec{})

	// Sockets are only created, never connected: on these machines vsock
	// reaches the hypervisor's host.
	tests := []struct {
		name   string
		create string
		ok     bool
	}{
		{"control tcp", "socket.AF_INET, socket.SOCK_STREAM", true},
		{"control udp", "socket.AF_INET6, socket.SOCK_DGRAM", true},
		{"control unix", "socket.AF_UNIX, socket.SOCK_STREAM", true},
		{"netlink", "socket.AF_NETLINK, socket.SOCK_RAW, 0", true},
		{"vsock stream", "socket.AF_VSOCK, socket.SOCK_STREAM", false},
		{"vsock dgram", "socket.AF_VSOCK, socket.SOCK_DGRAM", false},
		{"raw icmp", "socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP", false},
		{"raw ipv6", "socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6", false},
		{"packet", "socket.AF_PACKET, socket.SOCK_RAW, 0", false},
		{"packet dgram", "socket.AF_PACKET, socket.SOCK_DGRAM, 0", false},
		{"sock_packet", "socket.AF_INET, 10, 0x0300", false},
	}
	// One program for all (python starts slowly in some sandboxes): a
	// line per case, "ok" or the error.
	var prog strings.Builder
	prog.WriteString("import socket\n")
	for _, tt := range tests {
		fmt.Fprintf(&prog, "try:\n    socket.socket(%s).close()\n    print('ok')\nexcept OSError as e:\n    print(e)\n", tt.create)
	}
	got := Python(t, in, prog.String())
	lines := strings.Split(strings.TrimSuffix(got.Stdout, "\n"), "\n")
	if got.Exit != 0 || len(lines) != len(tests) {
		t.Fatalf("creating sockets = %+v, want a line for each of %d", got, len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (lines[i] == "ok") != tt.ok {
				t.Errorf("socket(%s) = %q, want success %v", tt.create, lines[i], tt.ok)
			}
		})
	}
}

// The daemon's API, whether on a Unix socket (named or abstract) or a
// loopback port, cannot be reached from inside even when nothing hides it.
func (s *suite) testDaemonUnreachable(t *testing.T) {
	r := s.cfg.New(t)
	dir := HostDir(t)
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
	abstract, err := net.Listen("unix", "@standin-test-"+ID())
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
	in := Start(t, r, sandbox.Spec{})

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
			if got := Python(t, in, tt.script); got.Exit == 0 {
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
