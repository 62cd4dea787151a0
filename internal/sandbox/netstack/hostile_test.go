package netstack

// What a hostile sandbox can make the daemon hold through its TUN device.
// Each test attacks a stack from inside a namespace of its own and measures
// the daemon side (this process), goroutines and heap, or checks the limit
// that bounds it. The floods are hand-made
// IPv4 packets sent on a raw socket in the namespace; their sources are
// TEST-NET-1 (RFC 5737) addresses that no one answers for, so the stack's
// replies go nowhere and the half-done state stays.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/testutil"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var spoofedSrc = netip.MustParseAddr("192.0.2.1")

// rawSocket returns a raw IPv4 socket (IP_HDRINCL) in e's namespace.
func rawSocket(tb testing.TB, e *env) int {
	tb.Helper()
	fd := -1
	if err := e.ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		tb.Fatalf("raw socket: %v", err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

// ipPacket returns an IPv4 packet from src to dst carrying payload as
// protocol proto; more and id make it the first fragment of datagram id.
func ipPacket(src, dst netip.Addr, proto tcpip.TransportProtocolNumber, id uint16, more bool, payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+len(payload))
	ip := header.IPv4(b)
	f := &header.IPv4Fields{
		TotalLength: uint16(len(b)),
		ID:          id,
		TTL:         64,
		Protocol:    uint8(proto),
		SrcAddr:     tcpip.AddrFrom4(src.As4()),
		DstAddr:     tcpip.AddrFrom4(dst.As4()),
	}
	if more {
		f.Flags = header.IPv4FlagMoreFragments
	}
	ip.Encode(f)
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(b[header.IPv4MinimumSize:], payload)
	return b
}

// synSegment returns a TCP SYN from src to dst.
func synSegment(src, dst netip.AddrPort) []byte {
	b := make([]byte, header.TCPMinimumSize)
	tcp := header.TCP(b)
	tcp.Encode(&header.TCPFields{
		SrcPort:    src.Port(),
		DstPort:    dst.Port(),
		SeqNum:     1,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagSyn,
		WindowSize: 65535,
	})
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, tcpip.AddrFrom4(src.Addr().As4()), tcpip.AddrFrom4(dst.Addr().As4()), uint16(len(b)))
	tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
	return b
}

// flood sends n packets, packet(i), to dst on fd in batches, waiting after
// each until the stack has taken them in: the TUN device's queue is short,
// and a packet it drops would not test the stack. The packets are made as
// they go so that they are not counted in what the stack holds.
func flood(tb testing.TB, e *env, fd int, dst netip.Addr, n int, packet func(i int) []byte) {
	tb.Helper()
	received := e.st.s.Stats().IP.PacketsReceived
	start := received.Value()
	to := &unix.SockaddrInet4{Addr: dst.As4()}
	const batch = 100
	for i := 0; i < n; i += batch {
		for j := i; j < min(i+batch, n); j++ {
			if err := unix.Sendto(fd, packet(j), 0, to); err != nil {
				tb.Fatalf("send: %v", err)
			}
		}
		want := start + uint64(min(i+batch, n))
		for deadline := time.Now().Add(hangGuard); received.Value() < want; {
			if time.Now().After(deadline) {
				tb.Fatalf("the stack took in %d of %d packets", received.Value()-start, want-start)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// held returns the heap in use and the goroutines of this process, after
// a collection.
func held() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, runtime.NumGoroutine()
}

// TestHostileSYNFlood: SYNs whose handshakes never complete cost at most
// maxInFlight goroutines (the forwarder drops the rest), and Close ends
// them.
func TestHostileSYNFlood(t *testing.T) {
	e := newEnv(t)
	fd := rawSocket(t, e)
	const n = 3 * maxInFlight
	_, g0 := held()
	drops := e.st.s.Stats().TCP.ForwardMaxInFlightDrop
	flood(t, e, fd, testDst.Addr(), n, func(i int) []byte {
		src := netip.AddrPortFrom(spoofedSrc, uint16(10000+i))
		return ipPacket(src.Addr(), testDst.Addr(), header.TCPProtocolNumber, 0, false, synSegment(src, testDst))
	})
	_, g1 := held()
	if got := g1 - g0; got > maxInFlight+64 {
		t.Errorf("%d half-open handshakes hold %d goroutines, want at most %d", n, got, maxInFlight+64)
	}
	if drops.Value() == 0 {
		t.Errorf("%d SYNs, none dropped at the in-flight limit %d: the limit was not reached", n, maxInFlight)
	}
	e.st.Close()
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if _, g := held(); g <= g0+16 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after Close, %d goroutines more than before the flood", g-g0)
		}
	}
}

// TestHostileFragments: TCP gets through the filter fragmented (only UDP
// fragments are refused), so IPv4 reassembly sees whatever the sandbox
// sends. Datagrams whose last fragment never comes cost at most gVisor's
// reassembly limit (4 MiB per stack, for 30 s), not what was sent.
func TestHostileFragments(t *testing.T) {
	e := newEnv(t)
	fd := rawSocket(t, e)
	const n, size = 4000, 8 << 10 // 32 MiB of first fragments
	payload := make([]byte, size)
	h0, _ := held()
	flood(t, e, fd, testDst.Addr(), n, func(i int) []byte {
		return ipPacket(spoofedSrc, testDst.Addr(), header.TCPProtocolNumber, uint16(i+1), true, payload)
	})
	h1, _ := held()
	if reassembling := e.st.s.Stats().IP.MalformedFragmentsReceived.Value(); reassembling != 0 {
		t.Errorf("%d fragments malformed, want all taken for reassembly", reassembling)
	}
	const limit = 12 << 20
	if grew := int64(h1) - int64(h0); grew > limit {
		t.Errorf("%d MiB of incomplete fragments grew the heap by %d MiB, want at most %d", n*size>>20, grew>>20, limit>>20)
	}
}

// TestHostileDNSTCPConnections: a sandbox may open DNS-over-TCP connections
// to its resolver and keep each one open with a query every few seconds.
// What the daemon holds for them must not grow with their number.
//
// Before the limit, each connection cost a goroutine and a 64 KiB buffer
// taken before its first query, about 80 KB in all, so 512 connections
// held some 40 MiB and a sandbox's 64k ports some 5 GiB. Now at most
// maxDNSTCPConns are served at once (RFC 7766 section 6.2.2), the others
// are reset, and a connection holds a buffer only while a query is read.
func TestHostileDNSTCPConnections(t *testing.T) {
	e := newEnv(t, "allowed.test")
	ask := dnsAsker(t, e, "allowed.test.")

	h0, g0 := held()
	const n = 512
	var open []net.Conn
	for i := 0; i < n; i++ {
		if c := ask(); c != nil {
			open = append(open, c)
		}
	}
	h1, g1 := held()
	answered := len(open)
	if answered == 0 {
		t.Fatal("no DNS-over-TCP query was answered")
	}
	if answered > maxDNSTCPConns {
		t.Errorf("%d DNS-over-TCP connections held open at once were answered, want at most %d", answered, maxDNSTCPConns)
	}
	// Each connection being served holds a goroutine and the stack's state
	// for it: 10 to 25 KiB measured, with the stack's tables. 48 KiB each
	// leaves room for noise and is still under the 64 KiB buffer alone a
	// connection used to take before its first query.
	const heapLimit, goroutineLimit = maxDNSTCPConns * 48 << 10, maxDNSTCPConns + 16
	if grew := int64(h1) - int64(h0); grew > heapLimit || g1-g0 > goroutineLimit {
		t.Errorf("%d DNS-over-TCP connections held open (%d answered) hold %d KiB of heap and %d goroutines, want at most %d KiB and %d",
			n, answered, grew>>10, g1-g0, heapLimit>>10, goroutineLimit)
	}

	// Connections the sandbox closes make room again, and refused ones
	// took none.
	for _, c := range open {
		c.Close()
	}
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if c := ask(); c != nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after the sandbox closed its DNS-over-TCP connections, none was answered again")
		}
	}
}

// TestHostileDNSTCPIdle: DNS-over-TCP connections the sandbox keeps open
// without sending queries are closed after dnsTCPIdle (shortened here), so
// a sandbox holding all maxDNSTCPConns of them idle does not keep DNS over
// TCP from it for good.
func TestHostileDNSTCPIdle(t *testing.T) {
	shorten(t, &dnsTCPIdle, time.Second)
	e := newEnv(t, "allowed.test")
	ask := dnsAsker(t, e, "allowed.test.")
	var idle []net.Conn
	for i := 0; i < maxDNSTCPConns; i++ {
		c := ask()
		if c == nil {
			t.Fatalf("DNS-over-TCP query %d of %d was not answered", i+1, maxDNSTCPConns)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// The stack closes each, which the sandbox sees as end of file.
	for i, c := range idle {
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read on idle DNS-over-TCP connection %d = %d, %v, want 0, EOF", i, n, err)
		}
	}
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if c := ask(); c != nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("after the stack closed idle DNS-over-TCP connections, no new one was answered")
		}
	}
}

// dnsAsker returns a function that sends one query for name over a new
// DNS-over-TCP connection to e's stack and returns the connection, open,
// if the query was answered. It closes a connection that was not: the
// stack holds nothing for it, and tests measuring the heap should not
// count their own half.
func dnsAsker(tb testing.TB, e *env, name string) func() net.Conn {
	q := mustQuery(tb, name, dnsmessage.TypeA)
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	server := netip.AddrPortFrom(e.ns.Config.Gateway, DNSPort).String()
	return func() net.Conn {
		c, err := e.dial("tcp", server)
		if err != nil {
			return nil
		}
		c.SetDeadline(time.Now().Add(hangGuard))
		var l [2]byte
		if _, err := c.Write(msg); err == nil {
			if _, err := io.ReadFull(c, l[:]); err == nil { // else reset: the limit
				if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(l[:]))); err == nil {
					return c
				}
			}
		}
		c.Close()
		return nil
	}
}

// TestHostileTCPFlows: a sandbox may open TCP connections and hold them.
// Beyond Options.MaxFlows at once a new one is refused (a reset to its
// SYN) and the refusal is logged; a flow closed by the gateway, or by the
// sandbox and then the gateway, makes room again, once however often its
// conn is closed.
func TestHostileTCPFlows(t *testing.T) {
	requireRoot(t)
	const maxFlows = 8
	ns, err := netns.Create(fmt.Sprintf("stintest-ns-%d-%d", os.Getpid(), nameSeq.Add(1)), netns.Config{})
	if err != nil {
		t.Fatalf("netns.Create: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})
	var logs testutil.SyncBuffer
	e := &env{ns: ns, conns: make(chan accepted, 2*maxFlows)}
	e.st, err = New(ns.TUN, ns.Config.MTU, Options{
		DNSAddr:  ns.Config.Gateway,
		MaxFlows: maxFlows,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		TCP: func(c net.Conn, dst netip.AddrPort, name string) {
			e.conns <- accepted{conn: c, dst: dst, name: name}
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.st.Close() })

	// open opens n flows, each of which must reach the callback.
	var sandbox, gateway []net.Conn
	open := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			c, err := e.dial("tcp", testDst.String())
			if err != nil {
				t.Fatalf("flow %d of %d open: dial: %v", len(sandbox)+1, maxFlows, err)
			}
			t.Cleanup(func() { c.Close() })
			sandbox = append(sandbox, c)
			gateway = append(gateway, e.accept(t).conn)
		}
	}
	// refused checks that n more flows are refused.
	refused := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			c, err := e.dial("tcp", testDst.String())
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, unix.ECONNREFUSED) {
				t.Fatalf("dial with %d flows open (MaxFlows %d) = %v, want connection refused", len(sandbox), maxFlows, err)
			}
		}
	}

	open(maxFlows)
	refused(3)
	if line := logs.String(); !strings.Contains(line, `msg="tcp flow refused"`) || !strings.Contains(line, "max_flows=8") {
		t.Errorf("log = %q, want a tcp flow refused line with max_flows=8", line)
	}

	// The gateway closes two flows, one of them twice; the sandbox
	// closes a third, which the gateway sees end and closes.
	gateway[0].Close()
	gateway[0].Close()
	gateway[1].Close()
	sandbox[2].Close()
	if _, err := io.ReadAll(gateway[2]); err != nil {
		t.Fatalf("gateway side of a flow the sandbox closed: %v", err)
	}
	gateway[2].Close()
	sandbox = sandbox[3:]
	open(3)
	refused(1)
}

// TestHostileOrphanFlow: a sandbox that stops reading, then lets the
// gateway close the flow, would leave the stack holding the data queued
// for it for as long as it acknowledges the stack's window probes, with
// the flow no longer counted against MaxFlows. The stack gives up on it
// after orphanTimeout (shortened here).
func TestHostileOrphanFlow(t *testing.T) {
	shorten(t, &orphanTimeout, time.Second)
	e := newEnv(t)
	c, err := e.dial("tcp", testDst.String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close() // never read from: its window closes
	g := e.accept(t).conn

	// Fill the sandbox's receive buffer and the stack's send buffer.
	chunk := make([]byte, 256<<10)
	for {
		g.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := g.Write(chunk); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("write to a sandbox that does not read: %v", err)
			}
			break
		}
	}
	stats := e.st.s.Stats().TCP
	timedOut := stats.EstablishedTimedout.Value()
	g.Close()
	for deadline := time.Now().Add(hangGuard); stats.EstablishedTimedout.Value() == timedOut; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a closed flow the sandbox does not read from was still held after %v (orphan timeout %v)", hangGuard, e.st.orphanTimeout)
		}
	}
}

// shorten sets *d, one of the package's timeouts, to v for the rest of the
// test; it must come before the stack is made (New copies the timeouts).
func shorten(tb testing.TB, d *time.Duration, v time.Duration) {
	tb.Helper()
	old := *d
	*d = v
	tb.Cleanup(func() { *d = old })
}

func TestLogLimiter(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name           string
		at             time.Duration // since start
		wantOK         bool
		wantSuppressed int
	}{
		{"first", 0, true, 0},
		{"at once", time.Millisecond, false, 0},
		{"just before", 10*time.Second - 1, false, 0},
		{"interval over", 10 * time.Second, true, 2},
		{"again at once", 10*time.Second + 1, false, 0},
		{"long after", time.Hour, true, 1},
	}
	var now time.Time
	l := logLimiter{every: 10 * time.Second, now: func() time.Time { return now }}
	// The cases run in order: each depends on the ones before it.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = start.Add(tt.at)
			ok, suppressed := l.allow()
			if ok != tt.wantOK || suppressed != tt.wantSuppressed {
				t.Errorf("allow() at +%v = %v, %d, want %v, %d", tt.at, ok, suppressed, tt.wantOK, tt.wantSuppressed)
			}
		})
	}
}
