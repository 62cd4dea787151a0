package namespaces

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The runtime and a sandbox's init talk over SOCK_SEQPACKET Unix sockets,
// one JSON message per packet, with file descriptors passed alongside
// (SCM_RIGHTS):
//
//   - the control socket is fd 3 of the init. Start sends the initConfig
//     on it, with the descriptor of Spec.NetNS if any; the init answers
//     with an initReply once the sandbox is set up. Then each Exec sends an
//     execRequest with its own exec socket and the command's stdin, stdout
//     and stderr. When the control socket ends (the daemon died), the init
//     exits, and with it, by the kernel's rules for PID namespaces, every
//     process of the sandbox.
//   - on an exec socket the init answers once with an execReply (the pid,
//     or why the command could not start; with TTY, the terminal's primary
//     side), then once more with the exit status. Shutting down the
//     runtime's side of it kills the command.
//
// Nothing here is a security boundary: only the daemon and the init hold
// these sockets, and the commands in the sandbox never see them.

// initConfig is what the init needs to build the sandbox.
type initConfig struct {
	// Scratch is an empty host directory; the init mounts a tmpfs there,
	// in its own mount namespace, to build the root in.
	Scratch  string
	Hostname string
	UID, GID uint32 // the init and its commands run as this user, who owns HomeDir
	NewNet   bool   // no Spec.NetNS: bring lo up in the init's new namespace
	Hide     []hidden
	Mounts   []bind
}

// hidden is a path to make look empty.
type hidden struct {
	Path string
	File bool // bind an empty file rather than an empty directory
}

// bind is a bind mount from the host.
type bind struct {
	Source, Target string
	Writable       bool
}

type initReply struct {
	Error string `json:",omitempty"`
	// Errno is set if the failure came from a system call, so that the
	// runtime can tell missing privileges (EPERM) from a bad spec.
	Errno uintptr `json:",omitempty"`
}

type execRequest struct {
	Args       []string
	Env        []string
	Dir        string
	TTY        bool
	Rows, Cols uint16
}

type execReply struct {
	Pid   int    `json:",omitempty"`
	Error string `json:",omitempty"`
	Exit  *int   `json:",omitempty"` // in the second reply
}

// maxMessage bounds one message, and so an Exec's arguments and
// environment (Linux allows 2 MiB for both, by default).
const maxMessage = 4 << 20

// socketPair returns a connected pair of SOCK_SEQPACKET sockets as the
// Go side (pollable, with deadlines) and a plain descriptor to pass on.
func socketPair() (*net.UnixConn, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("socketpair: %w", err)
	}
	// Messages may be large (the environment): let one fit in the buffer.
	_ = unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxMessage+64<<10)
	_ = unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxMessage+64<<10)
	c, err := fileConn(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, -1, err
	}
	return c, fds[1], nil
}

// fileConn wraps a socket descriptor, which it takes over.
func fileConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close() // FileConn has its own copy
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("socket: not a unix socket")
	}
	return uc, nil
}

// send writes one message with the given descriptors attached.
func send(c *net.UnixConn, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return errTooLarge
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

var errTooLarge = errors.New("message too large")

// receiver reads messages; its buffer is reused.
type receiver struct {
	buf, oob []byte
}

func newReceiver(size int) *receiver {
	return &receiver{buf: make([]byte, size), oob: make([]byte, unix.CmsgSpace(4*8))}
}

// recv reads one message into v and returns the descriptors that came with
// it (close-on-exec). A zero-length read, the peer gone, is errClosed.
func (r *receiver) recv(c *net.UnixConn, v any) ([]int, error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(r.buf, r.oob)
	if err != nil {
		return nil, err
	}
	fds, ferr := parseRights(r.oob[:oobn])
	if n == 0 {
		closeAll(fds)
		return nil, errClosed
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll(fds)
		return nil, errTooLarge
	}
	if ferr != nil {
		closeAll(fds)
		return nil, ferr
	}
	if err := json.Unmarshal(r.buf[:n], v); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("%w: %w", errBadMessage, err)
	}
	return fds, nil
}

var (
	errClosed     = errors.New("peer closed the socket")
	errBadMessage = errors.New("bad message")
)

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("parse control message: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
