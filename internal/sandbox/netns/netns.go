// Package netns gives each sandbox its own Linux network namespace whose only
// way out is a TUN device held by the daemon.
//
// A namespace made by Create contains lo and tun0, nothing else: tun0 carries
// the sandbox's address and the default route, so every packet the sandbox
// sends (other than to itself on lo) is read from the TUN file by the daemon's
// userspace stack (package netstack). There is no veth, bridge, NAT or
// firewall rule, so there is nothing to misconfigure into a path that leaves
// the machine. IPv6 is disabled inside the namespace.
//
// Namespaces are named and bind-mounted under /run/netns like `ip netns add`
// does, so a restarted daemon can find the ones it left behind (List) and
// remove them (Remove). Everything here needs root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN) and the `ip` command from iproute2.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bind-mounted, as iproute2 does.
const Dir = "/run/netns"

// TUNName is the name of the TUN device inside every namespace.
const TUNName = "tun0"

// Defaults for Config. Every sandbox can use the same pair because each has
// its own namespace; 100.96.0.0/30 sits in the shared address space of RFC
// 6598, which is unlikely to clash with anything the sandbox wants to reach
// by address (and no address is reachable except through the daemon anyway).
var (
	DefaultSandboxAddr = netip.MustParsePrefix("100.96.0.2/30")
	DefaultGateway     = netip.MustParseAddr("100.96.0.1")
)

// DefaultMTU is large so that bulk TCP moves in few, big packets: the cost of
// the userspace stack is mostly per packet, not per byte.
const DefaultMTU = 65000

// Config describes the inside of a namespace. The zero value is usable.
type Config struct {
	// SandboxAddr is tun0's address and prefix length.
	// If zero, DefaultSandboxAddr is used.
	SandboxAddr netip.Prefix

	// Gateway is the next hop of the default route; it is also the address
	// the sandbox's resolv.conf should name, since the daemon answers DNS
	// there. If zero, DefaultGateway is used.
	Gateway netip.Addr

	// MTU of tun0. If zero, DefaultMTU is used.
	MTU int
}

// withDefaults returns c with zero fields filled in.
func (c Config) withDefaults() Config {
	if !c.SandboxAddr.IsValid() {
		c.SandboxAddr = DefaultSandboxAddr
	}
	if !c.Gateway.IsValid() {
		c.Gateway = DefaultGateway
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	return c
}

// Validate reports the first field that is not usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !c.SandboxAddr.Addr().Is4() {
		return fmt.Errorf("sandbox address %q: must be IPv4", c.SandboxAddr)
	}
	if !c.Gateway.Is4() {
		return fmt.Errorf("gateway %q: must be IPv4", c.Gateway)
	}
	if c.Gateway == c.SandboxAddr.Addr() {
		return fmt.Errorf("gateway %q: same as sandbox address", c.Gateway)
	}
	// 68 is the IPv4 minimum (RFC 791); 65535 the largest IPv4 packet.
	if c.MTU < 68 || c.MTU > 65535 {
		return fmt.Errorf("mtu %d: must be between 68 and 65535", c.MTU)
	}
	return nil
}

// ErrExists is returned by Create when a namespace of that name exists.
var ErrExists = errors.New("network namespace exists")

// NameError reports a namespace name that is not a plain file name.
type NameError struct {
	Name string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid network namespace name %q: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit", e.Name)
}

// checkName keeps names to characters that are safe as a file name under Dir
// and as an argument to ip (which would take a leading '-' for a flag).
func checkName(name string) error {
	if name == "" || len(name) > 64 {
		return &NameError{Name: name}
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '-') {
			return &NameError{Name: name}
		}
	}
	return nil
}

// NS is a network namespace made by Create.
type NS struct {
	// Name is the namespace's name, as given to Create.
	Name string

	// Path is the bind mount that keeps the namespace alive (Dir/Name);
	// open it and setns(2) to enter, or pass it to a runtime as the
	// sandbox's network namespace.
	Path string

	// Config is the configuration with defaults filled in.
	Config Config

	// TUN is the daemon's end of tun0: each read returns one IPv4 (or
	// IPv6) packet without a header (IFF_NO_PI), each write injects one.
	// It is in blocking mode; a user such as netstack may switch the
	// descriptor to non-blocking. Closing it removes tun0. Delete closes it.
	TUN *os.File
}

// Create makes the network namespace name with lo up and tun0 configured
// from cfg: address, MTU, and the default route through cfg.Gateway. IPv6 is
// disabled in it. The caller owns the result and must call Delete.
func Create(name string, cfg Config) (*NS, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create network namespace %q: %w", name, err)
	}
	cfg = cfg.withDefaults()
	path := filepath.Join(Dir, name)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create network namespace %q: %w", name, ErrExists)
	}
	if err := ip("netns", "add", name); err != nil {
		return nil, fmt.Errorf("create network namespace %q: %w", name, err)
	}
	n := &NS{Name: name, Path: path, Config: cfg}
	if err := n.setup(); err != nil {
		// The namespace is ours; leave nothing half made behind.
		if derr := n.Delete(); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, fmt.Errorf("create network namespace %q: %w", name, err)
	}
	return n, nil
}

// setup disables IPv6, opens tun0 inside the namespace and configures the
// links and route.
func (n *NS) setup() error {
	err := n.Do(func() error {
		// Done before tun0 exists so that it is born without IPv6 (not even
		// a link-local address). A kernel without IPv6 has no such files.
		for _, f := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("disable ipv6: %w", err)
			}
		}
		f, err := openTUN(TUNName)
		if err != nil {
			return err
		}
		n.TUN = f
		return nil
	})
	if err != nil {
		return err
	}
	c := n.Config
	batch := fmt.Sprintf("link set lo up\n"+
		"link set %s mtu %d up\n"+
		"addr add %s dev %s\n"+
		// onlink: the gateway need not be inside the sandbox's prefix.
		"route add default via %s dev %s onlink\n",
		TUNName, c.MTU, c.SandboxAddr, TUNName, c.Gateway, TUNName)
	return ipBatch(n.Name, batch)
}

// openTUN creates the TUN device name in the calling thread's network
// namespace. The device lives as long as the returned file is open.
func openTUN(name string) (*os.File, error) {
	// Opened blocking so that os.NewFile does not register the descriptor
	// with Go's poller: the packet reader (gVisor's fdbased endpoint) polls
	// it itself.
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// Do runs fn on an OS thread that has entered the namespace, and returns its
// error. Sockets fn creates belong to the namespace and keep working after
// Do returns. Goroutines fn starts do not run in the namespace.
func (n *NS) Do(fn func() error) error {
	return Do(n.Path, fn)
}

// Do is NS.Do for the namespace at path (a bind mount such as Dir/name, or
// /proc/<pid>/ns/net, or /proc/self/fd/<n> of an open namespace).
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// setns(2) changes only the calling thread, so the goroutine must
		// stay on it. If the thread cannot get back to its original
		// namespace it is left locked and the runtime ends it with the
		// goroutine, so no other goroutine ever runs in the wrong namespace.
		runtime.LockOSThread()
		// do closes its descriptors before the result is sent, so that
		// none is still open when Do returns.
		back, err := do(path, fn)
		if back {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// do is the body of Do on a locked thread. back reports whether the thread
// is in its original namespace.
func do(path string, fn func() error) (back bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("open current network namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("open network namespace: %w", err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter network namespace %q: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(ferr, fmt.Errorf("leave network namespace %q: %w", path, err))
	}
	return true, ferr
}

// Delete closes the TUN file (which removes tun0) and removes the namespace.
// Deleting twice is not an error. The kernel frees the namespace once no
// process and no descriptor (such as a duplicate of the TUN descriptor still
// held by a stack) refers to it.
func (n *NS) Delete() error {
	var errs []error
	if n.TUN != nil {
		if err := n.TUN.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("close tun: %w", err))
		}
	}
	if err := Remove(n.Name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove removes the named namespace, such as one List found after a
// restart. Removing a namespace that does not exist is not an error.
func Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(Dir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := ip("netns", "delete", name); err != nil {
		return fmt.Errorf("remove network namespace %q: %w", name, err)
	}
	return nil
}

// List returns the names of the namespaces under Dir that start with prefix,
// so a daemon can find the ones a previous run left behind.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ip runs the ip command; its output goes into the error.
func ip(args ...string) error {
	return runIP(nil, args...)
}

// ipBatch runs commands, one a line, inside the namespace name.
func ipBatch(name, commands string) error {
	return runIP(strings.NewReader(commands), "-n", name, "-batch", "-")
}

func runIP(stdin *strings.Reader, args ...string) error {
	cmd := exec.Command("ip", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
