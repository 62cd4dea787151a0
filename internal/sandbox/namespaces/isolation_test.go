package namespaces

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/standin/standin/internal/sandbox"
	"github.com/standin/standin/internal/sandbox/sandboxtest"
)

// What the kernel says about a command and about the init, beyond what
// sandboxtest checks of every runtime: no_new_privs and the seccomp filter
// on every process, the init as the sandbox user on every thread and out
// of the commands' reach.
func TestPrivileges(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{})

	// The command: what sandboxtest checks (user, capabilities) and
	// no_new_privs and the filter. The init: the same.
	const fields = `grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' %s | tr -s '\t' ' '`
	command := sandboxtest.Sh(t, in, fmt.Sprintf(fields, "/proc/self/status")).Stdout
	if want := "CapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n"; !strings.HasSuffix(command, want) {
		t.Errorf("command's status:\n%s\nwant it to end in:\n%s", command, want)
	}
	if init := sandboxtest.Sh(t, in, fmt.Sprintf(fields, "/proc/1/status")).Stdout; init != command {
		t.Errorf("init's status:\n%s\nwant the command's:\n%s", init, command)
	}
	// The init is this package's, on every thread the sandbox user. (Only
	// the thread that forks commands has an empty bounding set, and it is
	// /proc/1/status.)
	if got := sandboxtest.Sh(t, in, `tr '\0' ' ' < /proc/1/cmdline`); got.Stdout != initName+" " {
		t.Errorf("/proc/1/cmdline = %q, want the init, %q", got.Stdout, initName)
	}
	got := sandboxtest.Sh(t, in, `for t in /proc/1/task/*; do grep -E '^(Uid|CapPrm|CapEff|NoNewPrivs|Seccomp):' $t/status | tr -s '\t' ' '; echo; done`)
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
		if got := sandboxtest.Sh(t, in, cmd); got.Exit == 0 {
			t.Errorf("%s inside = %+v, want failure", cmd, got)
		}
	}
	// Signals from the commands do not end it, and with it the sandbox.
	if got := sandboxtest.Sh(t, in, "for s in TERM INT HUP QUIT USR1 SEGV ABRT; do kill -$s 1; done; sleep 0.2; echo alive"); got.Stdout != "alive\n" {
		t.Errorf("signals to the init: %+v", got)
	}
	if got := sandboxtest.Cmd(t, in, "echo", "alive"); got.Stdout != "alive\n" {
		t.Errorf("after signals to the init: %+v", got)
	}
	// No device nodes: no CAP_MKNOD.
	if got := sandboxtest.Sh(t, in, "mknod /tmp/null c 1 3"); got.Exit != 1 {
		t.Errorf("mknod = %+v, want exit 1", got)
	}
}

// The seccomp filter: system calls the sandbox user could otherwise make.
// Each case runs on the host first, as a control, where it is allowed.
func TestSeccomp(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	in := sandboxtest.Start(t, r, sandbox.Spec{})

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
			if got := sandboxtest.Python(t, in, prog); got.Stdout != tt.want+"\n" || got.Exit != 0 {
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
		if got := sandboxtest.Python(t, in, prog); got.Exit != 128+sigsys {
			t.Errorf("inside = %+v, want killed by SIGSYS (exit %d)", got, 128+sigsys)
		}
	})
}
