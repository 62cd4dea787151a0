package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/testutil"
)

// pyEcho connects to argv[1]:argv[2], sends argv[3], half-closes and prints
// what comes back.
const pyEcho = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(sys.argv[3].encode())
s.shutdown(socket.SHUT_WR)
buf = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    buf += b
sys.stdout.write(buf.decode())
`

func TestTCPFromTool(t *testing.T) {
	e := newEnv(t)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.run(t, "python3", "-c", pyEcho, testDst.Addr().String(), fmt.Sprint(testDst.Port()), "hello from the sandbox")
		done <- result{out, err}
	}()

	a := e.accept(t)
	if a.dst != testDst {
		t.Errorf("TCP callback dst = %v, want %v", a.dst, testDst)
	}
	if a.name != "" {
		t.Errorf("TCP callback name for %v = %q, want \"\" (never resolved)", a.dst.Addr(), a.name)
	}
	if err := echo(a.conn, "echo: "); err != nil {
		t.Fatalf("echo: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("python3 in namespace: %v", r.err)
	}
	if want := "echo: hello from the sandbox"; r.out != want {
		t.Errorf("sandbox got %q, want %q", r.out, want)
	}
}

// TestTCPOptions checks the stack-wide TCP settings that bulk transfers
// through the TUN device depend on (see start).
func TestTCPOptions(t *testing.T) {
	e := newEnv(t)
	var sack tcpip.TCPSACKEnabled
	var recovery tcpip.TCPRecovery
	var moderate tcpip.TCPModerateReceiveBufferOption
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	var snd tcpip.TCPSendBufferSizeRangeOption
	for _, opt := range []tcpip.GettableTransportProtocolOption{&sack, &recovery, &moderate, &rcv, &snd} {
		if err := e.st.s.TransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			t.Fatalf("TransportProtocolOption(%T): %s", opt, err)
		}
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"SACK", sack, tcpip.TCPSACKEnabled(true)},
		// RACK's tail loss probes retransmitted segments the sandbox had
		// received but was slow to ACK.
		{"recovery (no RACK)", recovery, tcpip.TCPRecovery(0)},
		{"receive buffer moderation", moderate, tcpip.TCPModerateReceiveBufferOption(true)},
		{"max receive buffer", rcv.Max, tcpRecvBufMax},
		{"max send buffer", snd.Max, tcpSendBufMax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("%s option (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestTCPToGatewayAddress(t *testing.T) {
	// Only port 53 of the resolver address is the stack's own; any other
	// port is an ordinary connection for the callback to judge.
	e := newEnv(t)
	dst := netip.AddrPortFrom(e.ns.Config.Gateway, 8080)
	c, err := e.dial("tcp", dst.String())
	if err != nil {
		t.Fatalf("dial %v: %v", dst, err)
	}
	defer c.Close()
	if a := e.accept(t); a.dst != dst {
		t.Errorf("TCP callback dst = %v, want %v", a.dst, dst)
	}
}

func TestDNSFromTools(t *testing.T) {
	e := newEnv(t, "allowed.test")

	out, err := e.run(t, "getent", "ahostsv4", "allowed.test")
	if err != nil {
		t.Fatalf("getent ahostsv4 allowed.test: %v", err)
	}
	fields := strings.Fields(out)
	if len(fields) == 0 {
		t.Fatalf("getent ahostsv4 allowed.test printed nothing")
	}
	addr, err := netip.ParseAddr(fields[0])
	if err != nil || !DefaultPool.Contains(addr) {
		t.Fatalf("getent ahostsv4 allowed.test = %q, want an address in %v", out, DefaultPool)
	}
	if got := e.st.NameFor(addr); got != "allowed.test" {
		t.Errorf("NameFor(%v) = %q, want %q", addr, got, "allowed.test")
	}

	// A real client resolving and connecting: the callback learns the name.
	done := make(chan error, 1)
	go func() {
		out, err := e.run(t, "curl", "-sS", "--max-time", "20", "http://allowed.test:8080/path")
		if err == nil && out != "hello" {
			err = fmt.Errorf("curl printed %q, want %q", out, "hello")
		}
		done <- err
	}()
	a := e.accept(t)
	if want := netip.AddrPortFrom(addr, 8080); a.dst != want || a.name != "allowed.test" {
		t.Errorf("TCP callback got dst %v name %q, want %v %q", a.dst, a.name, want, "allowed.test")
	}
	buf := make([]byte, 4096)
	n, _ := a.conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "GET /path HTTP/1.1\r\n") {
		t.Errorf("request = %q, want a GET /path", buf[:n])
	}
	io.WriteString(a.conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
	a.conn.Close()
	if err := <-done; err != nil {
		t.Errorf("curl in namespace: %v", err)
	}

	if out, err := e.run(t, "getent", "hosts", "denied.test"); err == nil {
		t.Errorf("getent hosts denied.test = %q, want failure", out)
	}
}

func TestDNS(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			e := newEnv(t, "allowed.test", "other.test")
			r := e.resolver(network)
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()

			got := map[string]string{}
			for _, name := range []string{"allowed.test", "other.test", "Allowed.Test."} {
				addrs, err := r.LookupNetIP(ctx, "ip4", name)
				if err != nil {
					t.Fatalf("LookupNetIP(%q): %v", name, err)
				}
				if len(addrs) != 1 {
					t.Fatalf("LookupNetIP(%q) = %v, want one address", name, addrs)
				}
				got[name] = addrs[0].String()
				if n := e.st.NameFor(addrs[0]); n != strings.ToLower(strings.TrimSuffix(name, ".")) {
					t.Errorf("NameFor(%v) = %q, want %q", addrs[0], n, name)
				}
			}
			want := map[string]string{
				"allowed.test":  "198.18.0.1",
				"other.test":    "198.18.0.2",
				"Allowed.Test.": "198.18.0.1", // same name, same address
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}

			if addrs, err := r.LookupNetIP(ctx, "ip6", "allowed.test"); err == nil || len(addrs) != 0 {
				t.Errorf("LookupNetIP(ip6, allowed.test) = %v, %v; want no addresses", addrs, err)
			}
			_, err := r.LookupNetIP(ctx, "ip4", "denied.test")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Errorf("LookupNetIP(denied.test) error = %v, want not found", err)
			}
		})
	}
}

func TestDropped(t *testing.T) {
	e := newEnv(t, "allowed.test")
	query := mustQuery(t, "allowed.test.", dnsmessage.TypeA)

	// noReply sends payload with c and expects nothing back. The read
	// deadline is how "nothing" is observed; the Dropped counter below
	// shows the packets did reach the stack and were dropped there.
	noReply := func(t *testing.T, c net.Conn, payload []byte) {
		t.Helper()
		defer c.Close()
		if _, err := c.Write(payload); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read = %q, %v; want a timeout (no reply)", buf[:n], err)
		}
	}

	t.Run("ping", func(t *testing.T) {
		var c *icmp.PacketConn
		if err := e.ns.Do(func() error {
			var err error
			c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
			return err
		}); err != nil {
			t.Fatalf("icmp socket: %v", err)
		}
		defer c.Close()
		// Any address, and the stack's own (the resolver) too.
		for i, dst := range []netip.Addr{testDst.Addr(), e.ns.Config.Gateway} {
			before := e.st.Dropped()
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 7, Seq: i, Data: []byte("ping")}}
			b, err := msg.Marshal(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				t.Fatalf("send echo to %v: %v", dst, err)
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, from, err := c.ReadFrom(make([]byte, 1500))
			if err == nil {
				t.Errorf("echo request to %v got %d bytes back from %v, want no reply", dst, n, from)
			}
			if e.st.Dropped() == before {
				t.Errorf("Dropped() = %d before and after a ping to %v, want it to grow", before, dst)
			}
		}
	})

	t.Run("udp elsewhere", func(t *testing.T) {
		for _, dst := range []netip.AddrPort{
			testDNSOff, // DNS, but not to the resolver resolv.conf names
			netip.AddrPortFrom(e.ns.Config.Gateway, 54),
		} {
			before := e.st.Dropped()
			c, err := e.dial("udp", dst.String())
			if err != nil {
				t.Fatalf("dial %v: %v", dst, err)
			}
			noReply(t, c, query)
			if e.st.Dropped() == before {
				t.Errorf("Dropped() = %d before and after UDP to %v, want it to grow", before, dst)
			}
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		c, err := e.dial("tcp6", "[2001:db8::7]:443")
		if err == nil {
			c.Close()
			t.Errorf("IPv6 connect from the sandbox succeeded, want failure")
		}
	})

	t.Run("resolver still answers", func(t *testing.T) {
		// Control for the cases above: the same query to the right place
		// is answered.
		c, err := e.dial("udp", netip.AddrPortFrom(e.ns.Config.Gateway, DNSPort).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(query)
		c.SetReadDeadline(time.Now().Add(hangGuard))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || len(m.Answers) != 1 {
			t.Errorf("reply = %v, %v; want one answer", m, err)
		}
	})
}

func mustQuery(tb testing.TB, name string, typ dnsmessage.Type) []byte {
	tb.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 0x1234, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestCloseResetsConnections(t *testing.T) {
	e := newEnv(t)
	c, err := e.dial("tcp", testDst.String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	a := e.accept(t)
	if err := e.st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := a.conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read on a callback connection after Close succeeded, want error")
	}
	if err := e.st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNoCallbackResets(t *testing.T) {
	requireRoot(t)
	ns, err := netns.Create(fmt.Sprintf("stintest-ns-%d-%d", os.Getpid(), nameSeq.Add(1)), netns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Delete()
	st, err := New(ns.TUN, ns.Config.MTU, Options{DNSAddr: ns.Config.Gateway})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = ns.Do(func() error {
		c, err := net.DialTimeout("tcp", testDst.String(), hangGuard)
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial with no TCP callback = %v, want connection refused", err)
	}
}

// TestCleanup checks that Close and Delete leave nothing behind: no
// namespace, no tun device, no descriptor.
func TestCleanup(t *testing.T) {
	requireRoot(t)
	fdsBefore := openFDs(t)

	// Only this test's own namespace is checked: other test binaries
	// run in parallel create and delete theirs in the same directory.
	name := fmt.Sprintf("stintest-ns-%d-%d", os.Getpid(), nameSeq.Add(1))
	ns, err := netns.Create(name, netns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Holding the namespace lets us look inside it after Delete.
	held, err := os.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(ns.TUN, ns.Config.MTU, Options{DNSAddr: ns.Config.Gateway, TCP: func(c net.Conn, _ netip.AddrPort, _ string) { echo(c, "") }})
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", testDst.String(), hangGuard)
		return err
	}); err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	// Deleting the namespace before closing the stack must be safe too:
	// the stack holds its own descriptor.
	if err := ns.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	var links []string
	if err := enter(held, func() error {
		var err error
		links, err = testutil.NetInterfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	held.Close()
	if diff := cmp.Diff([]string{"lo"}, links); diff != "" {
		t.Errorf("interfaces left in the deleted namespace (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(netns.Dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s after Delete: stat = %v, want not exist", name, err)
	}
	if diff := cmp.Diff(fdsBefore, openFDs(t)); diff != "" {
		t.Errorf("open descriptors before/after (-before +after):\n%s", diff)
	}
}

// enter runs fn in the namespace open as f.
func enter(f *os.File, fn func() error) error {
	return netns.Do(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), fn)
}

// openFDs returns what each open descriptor of the process refers to.
func openFDs(tb testing.TB) map[string]string {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		// The descriptor ReadDir itself holds is gone by now.
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds[e.Name()] = target
		}
	}
	return fds
}
