package namespaces

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter every process in a sandbox runs under, the init
// included. It is a denylist, like Docker's default profile, on top of the
// sandbox user having no capabilities: most calls below fail without
// capabilities anyway, and the filter keeps them failing if a kernel bug
// would let one through. The calls that an unprivileged user may make and
// that we still refuse are the point: sockets that leave the network
// namespace (AF_VSOCK reaches the hypervisor's host), user namespaces (which
// would hand the sandbox user capabilities over new namespaces), io_uring
// (a large attack surface that bypasses this filter), ptrace, keyrings,
// perf and bpf.
//
// Only x86_64 is allowed: a 32-bit (int 0x80) or x32 system call kills the
// process, since its numbers would mean other calls than the ones checked.

// Offsets into struct seccomp_data (little-endian x86_64): nr, arch, then
// the 64-bit instruction pointer and six 64-bit arguments. Only the low
// halves of the arguments we check matter: the kernel reads them as int.
const (
	offNR   = 0
	offArch = 4
	offArg0 = 16
	offArg1 = 24
)

// x32Bit marks a system call of the x32 ABI.
const x32Bit = 0x40000000

// Filter results.
const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retErrno = unix.SECCOMP_RET_ERRNO
)

// deniedCalls fail with EPERM whatever their arguments.
var deniedCalls = []uintptr{
	// Debugging and reading other processes' memory.
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_KCMP, unix.SYS_PIDFD_GETFD,
	// Mounts and namespaces.
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOUNT_SETATTR,
	unix.SYS_OPEN_BY_HANDLE_AT,
	// io_uring runs operations outside this filter's view.
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	// Kernel attack surface an unprivileged user can otherwise reach.
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	// The machine: modules, kexec, swap, reboot, clock, accounting, quotas.
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_CREATE_MODULE, unix.SYS_QUERY_MODULE, unix.SYS_GET_KERNEL_SYMS,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_ACCT,
	unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_SETTIMEOFDAY,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME,
	unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_SYSLOG, unix.SYS_VHANGUP,
	unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_NFSSERVCTL, unix.SYS__SYSCTL, unix.SYS_USELIB, unix.SYS_USTAT, unix.SYS_SYSFS,
}

// nsCloneFlags are the clone flags that create namespaces. clone3 cannot be
// checked (its flags are in memory), so it fails with ENOSYS, which makes
// glibc and others fall back to clone.
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME

// sockPacket is the obsolete SOCK_PACKET type, a packet socket by another name.
const sockPacket = 10

// filter returns the seccomp program.
func filter() ([]bpf.RawInstruction, error) {
	var a assembler
	ld := func(off uint32) { a.emit(bpf.LoadAbsolute{Off: off, Size: 4}) }

	ld(offArch)
	a.jump(bpf.JumpNotEqual, unix.AUDIT_ARCH_X86_64, "kill")
	ld(offNR)
	a.jump(bpf.JumpGreaterOrEqual, x32Bit, "kill")
	a.jump(bpf.JumpEqual, unix.SYS_SOCKET, "socket")
	a.jump(bpf.JumpEqual, unix.SYS_SOCKETPAIR, "socket")
	a.jump(bpf.JumpEqual, unix.SYS_CLONE, "clone")
	a.jump(bpf.JumpEqual, unix.SYS_CLONE3, "enosys")
	a.jump(bpf.JumpEqual, unix.SYS_PERSONALITY, "personality")
	a.jump(bpf.JumpEqual, unix.SYS_IOCTL, "ioctl")
	for _, nr := range deniedCalls {
		a.jump(bpf.JumpEqual, uint32(nr), "eperm")
	}
	a.ret(retAllow)

	// Only local, IP and netlink sockets exist: AF_VSOCK, AF_PACKET and
	// every other family fail as if not built into the kernel. Netlink
	// sockets are SOCK_RAW by convention (iproute2, glibc's if_nameindex
	// and getaddrinfo use them) and carry no packets, so they are allowed.
	a.label("socket")
	ld(offArg0)
	a.jump(bpf.JumpEqual, unix.AF_NETLINK, "allow")
	a.jump(bpf.JumpEqual, unix.AF_UNIX, "socktype")
	a.jump(bpf.JumpEqual, unix.AF_INET, "socktype")
	a.jump(bpf.JumpEqual, unix.AF_INET6, "socktype")
	a.ret(retErrno | uint32(unix.EAFNOSUPPORT))
	a.label("socktype")
	ld(offArg1)
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf}) // SOCK_TYPE_MASK: drop SOCK_NONBLOCK, SOCK_CLOEXEC
	a.jump(bpf.JumpEqual, unix.SOCK_RAW, "eperm")
	a.jump(bpf.JumpEqual, sockPacket, "eperm")
	a.ret(retAllow)

	a.label("clone")
	ld(offArg0)
	a.jump(bpf.JumpBitsSet, nsCloneFlags, "eperm")
	a.ret(retAllow)

	// personality(0xffffffff) only reads it; PER_LINUX is the default.
	// Anything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) is refused.
	a.label("personality")
	ld(offArg0)
	a.jump(bpf.JumpEqual, 0, "allow")
	a.jump(bpf.JumpEqual, 0xffffffff, "allow")
	a.ret(retErrno | uint32(unix.EPERM))

	// Pushing input into a terminal (TIOCSTI) or the console (TIOCLINUX).
	a.label("ioctl")
	ld(offArg1)
	a.jump(bpf.JumpEqual, unix.TIOCSTI, "eperm")
	a.jump(bpf.JumpEqual, unix.TIOCLINUX, "eperm")
	a.ret(retAllow)

	a.label("allow")
	a.ret(retAllow)
	a.label("eperm")
	a.ret(retErrno | uint32(unix.EPERM))
	a.label("enosys")
	a.ret(retErrno | uint32(unix.ENOSYS))
	a.label("kill")
	a.ret(retKill)
	return a.assemble()
}

// installFilter sets no_new_privs and the filter on every thread of this
// process; children inherit both.
func installFilter() error {
	raw, err := filter()
	if err != nil {
		return err
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// TSYNC puts the filter (and no_new_privs) on all threads at once; on
	// failure it returns the id of a thread it could not synchronise.
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	switch {
	case errno != 0:
		return fmt.Errorf("install seccomp filter: %w", errno)
	case r != 0:
		return fmt.Errorf("install seccomp filter: thread %d not synchronised", r)
	}
	return nil
}

// assembler lays out BPF instructions with jumps to named labels, which
// golang.org/x/net/bpf leaves to the caller as instruction counts.
type assembler struct {
	ins    []bpf.Instruction
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at    int
	label string
}

func (a *assembler) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *assembler) ret(v uint32) { a.emit(bpf.RetConstant{Val: v}) }

// jump emits "if A <cond> val goto label", falling through otherwise.
func (a *assembler) jump(cond bpf.JumpTest, val uint32, label string) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), label: label})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *assembler) assemble() ([]bpf.RawInstruction, error) {
	for _, f := range a.fixups {
		to, ok := a.labels[f.label]
		skip := to - f.at - 1
		if !ok || skip < 0 || skip > 255 {
			return nil, fmt.Errorf("seccomp filter: bad jump to %q", f.label)
		}
		j := a.ins[f.at].(bpf.JumpIf)
		j.SkipTrue = uint8(skip)
		a.ins[f.at] = j
	}
	return bpf.Assemble(a.ins)
}
