package netstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox/netns"
)

// The integration tests here need root: each creates its own network
// namespace (unique name, deleted in t.Cleanup) whose only route is tun0 into
// a Stack of the test. Packets the tests send, whatever their destination,
// end in that stack; nothing leaves the machine.

// Addresses from TEST-NET-3 (RFC 5737): never routed anywhere, and inside the
// test namespace they can only reach our stack anyway.
var (
	testDst    = netip.MustParseAddrPort("203.0.113.7:443")
	testDNSOff = netip.MustParseAddrPort("203.0.113.53:53")
)

// hangGuard bounds how long a test waits for something that should happen;
// it never decides a pass.
const hangGuard = 20 * time.Second

var nameSeq atomic.Int64

// accepted is one connection handed to Options.TCP.
type accepted struct {
	conn net.Conn
	dst  netip.AddrPort
	name string
}

// env is a namespace with a stack on its TUN device.
type env struct {
	ns    *netns.NS
	st    *Stack
	conns chan accepted
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test creates network namespaces: run it as root")
	}
}

// newEnv creates a namespace and a stack whose DNS allows the names in allow.
// The namespace's resolv.conf (seen through `ip netns exec`) names the stack.
func newEnv(tb testing.TB, allow ...string) *env {
	tb.Helper()
	requireRoot(tb)
	name := fmt.Sprintf("stintest-ns-%d-%d", os.Getpid(), nameSeq.Add(1))
	ns, err := netns.Create(name, netns.Config{})
	if err != nil {
		tb.Fatalf("netns.Create: %v", err)
	}
	tb.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			tb.Errorf("Delete: %v", err)
		}
	})

	// ip netns exec bind-mounts /etc/netns/<name>/* over /etc/*.
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		os.RemoveAll(etc)
		os.Remove("/etc/netns") // only if empty: it may be someone else's
	})
	resolv := fmt.Sprintf("nameserver %s\noptions timeout:2 attempts:2\n", ns.Config.Gateway)
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		tb.Fatal(err)
	}

	e := &env{ns: ns, conns: make(chan accepted, 16)}
	st, err := New(ns.TUN, ns.Config.MTU, Options{
		TCP: func(c net.Conn, dst netip.AddrPort, name string) {
			e.conns <- accepted{conn: c, dst: dst, name: name}
		},
		DNSAddr: ns.Config.Gateway,
		Allow: func(name string) bool {
			for _, a := range allow {
				if name == a {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	e.st = st
	tb.Cleanup(func() { st.Close() })
	return e
}

// accept returns the next connection handed to Options.TCP.
func (e *env) accept(tb testing.TB) accepted {
	tb.Helper()
	select {
	case a := <-e.conns:
		tb.Cleanup(func() { a.conn.Close() })
		return a
	case <-time.After(hangGuard):
		tb.Fatal("no connection reached the TCP callback")
		return accepted{}
	}
}

// dial opens a connection from inside the namespace, as a sandboxed process
// would: the socket is created on a thread that has entered it.
func (e *env) dial(network, addr string) (net.Conn, error) {
	var c net.Conn
	err := e.ns.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, addr, hangGuard)
		return err
	})
	return c, err
}

// resolver is a Go resolver whose every query goes to the stack's DNS over
// network ("udp" or "tcp") from inside the namespace.
func (e *env) resolver(network string) *net.Resolver {
	server := netip.AddrPortFrom(e.ns.Config.Gateway, DNSPort).String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return e.dial(network, server)
		},
	}
}

// run runs a command inside the namespace with `ip netns exec` and returns
// its output and error.
func (e *env) run(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", e.ns.Name}, args...)...)
	// No proxy settings: the tools must go straight at the addresses.
	for _, kv := range os.Environ() {
		if !strings.Contains(strings.ToLower(strings.SplitN(kv, "=", 2)[0]), "proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return string(out), err
}

// echo reads everything from c until EOF and writes back prefix+data.
func echo(c net.Conn, prefix string) error {
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if _, err := c.Write(append([]byte(prefix), b...)); err != nil {
		return err
	}
	return c.Close()
}
