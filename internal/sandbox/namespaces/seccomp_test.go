package namespaces

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is one system call as the filter sees it.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint32 // low halves
}

// packet lays out seccomp_data for golang.org/x/net/bpf's VM, which loads
// words big-endian where the kernel loads them in the host's order: each
// 32-bit word is written big-endian at the kernel's offset for it.
func (c call) packet() []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNR:], c.nr)
	binary.BigEndian.PutUint32(b[offArch:], c.arch)
	for i, a := range c.args {
		binary.BigEndian.PutUint32(b[offArg0+8*i:], a)
	}
	return b
}

func sys(nr uintptr, args ...uint32) call {
	c := call{arch: unix.AUDIT_ARCH_X86_64, nr: uint32(nr)}
	copy(c.args[:], args)
	return c
}

func errno(e unix.Errno) uint32 { return retErrno | uint32(e) }

func TestFilter(t *testing.T) {
	raw, err := filter()
	if err != nil {
		t.Fatalf("filter: %v", err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	const (
		i386Getpid = 20
		x32Getpid  = x32Bit + unix.SYS_GETPID
	)
	tests := []struct {
		name string
		call call
		want uint32
	}{
		{"getpid", sys(unix.SYS_GETPID), retAllow},
		{"read", sys(unix.SYS_READ), retAllow},
		{"execve", sys(unix.SYS_EXECVE), retAllow},
		{"i386 abi", call{arch: unix.AUDIT_ARCH_I386, nr: i386Getpid}, retKill},
		{"x32 abi", call{arch: unix.AUDIT_ARCH_X86_64, nr: x32Getpid}, retKill},
		{"aarch64", call{arch: unix.AUDIT_ARCH_AARCH64, nr: unix.SYS_GETPID}, retKill},

		{"tcp", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC), retAllow},
		{"udp6", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM), retAllow},
		{"ping", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP), retAllow},
		{"unix", sys(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_SEQPACKET), retAllow},
		{"unix pair", sys(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM), retAllow},
		{"netlink raw", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC), retAllow},
		{"vsock", sys(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"vsock pair", sys(unix.SYS_SOCKETPAIR, unix.AF_VSOCK, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"packet", sys(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW), errno(unix.EAFNOSUPPORT)},
		{"packet dgram", sys(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_DGRAM), errno(unix.EAFNOSUPPORT)},
		{"bluetooth", sys(unix.SYS_SOCKET, unix.AF_BLUETOOTH, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"alg", sys(unix.SYS_SOCKET, unix.AF_ALG, unix.SOCK_SEQPACKET), errno(unix.EAFNOSUPPORT)},
		{"raw ip", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP), errno(unix.EPERM)},
		{"raw ip cloexec", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK), errno(unix.EPERM)},
		{"raw ipv6", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6), errno(unix.EPERM)},
		{"raw unix", sys(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_RAW), errno(unix.EPERM)},
		{"sock_packet", sys(unix.SYS_SOCKET, unix.AF_INET, sockPacket), errno(unix.EPERM)},

		{"fork", sys(unix.SYS_CLONE, uint32(unix.SIGCHLD)), retAllow},
		{"thread", sys(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD), retAllow},
		{"clone newuser", sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint32(unix.SIGCHLD)), errno(unix.EPERM)},
		{"clone newns", sys(unix.SYS_CLONE, unix.CLONE_NEWNS), errno(unix.EPERM)},
		{"clone newtime", sys(unix.SYS_CLONE, unix.CLONE_NEWTIME), errno(unix.EPERM)},
		{"clone3", sys(unix.SYS_CLONE3), errno(unix.ENOSYS)},

		{"personality query", sys(unix.SYS_PERSONALITY, 0xffffffff), retAllow},
		{"personality linux", sys(unix.SYS_PERSONALITY, 0), retAllow},
		{"personality no aslr", sys(unix.SYS_PERSONALITY, 0x0040000), errno(unix.EPERM)},
		{"personality linux32", sys(unix.SYS_PERSONALITY, 0x0008), errno(unix.EPERM)},

		{"ioctl tcgets", sys(unix.SYS_IOCTL, 0, unix.TCGETS), retAllow},
		{"ioctl tiocsti", sys(unix.SYS_IOCTL, 0, unix.TIOCSTI), errno(unix.EPERM)},
		{"ioctl tioclinux", sys(unix.SYS_IOCTL, 0, unix.TIOCLINUX), errno(unix.EPERM)},
	}
	for _, nr := range deniedCalls {
		tests = append(tests, struct {
			name string
			call call
			want uint32
		}{fmt.Sprintf("denied %d", nr), sys(nr), errno(unix.EPERM)})
	}
	for _, want := range []uintptr{unix.SYS_PTRACE, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_UNSHARE,
		unix.SYS_SETNS, unix.SYS_KEXEC_LOAD, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_KEYCTL, unix.SYS_USERFAULTFD,
		unix.SYS_INIT_MODULE, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_REBOOT, unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER,
		unix.SYS_IO_URING_REGISTER, unix.SYS_CLOCK_SETTIME, unix.SYS_SETTIMEOFDAY, unix.SYS_ACCT, unix.SYS_SWAPON} {
		found := false
		for _, nr := range deniedCalls {
			found = found || nr == want
		}
		if !found {
			t.Errorf("system call %d missing from deniedCalls", want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vm.Run(tt.call.packet())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if uint32(got) != tt.want {
				t.Errorf("filter(%+v) = %#x, want %#x", tt.call, uint32(got), tt.want)
			}
		})
	}
}
