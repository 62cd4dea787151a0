// Package netstack is the sandbox's whole network: a userspace TCP/IP stack
// (gVisor's tcpip) running on the daemon's end of the sandbox's TUN device.
//
// Every TCP connection the sandbox opens, to any address and port, is
// completed here and handed to Options.TCP with its original destination;
// the caller (the gateway) decides what happens to it. DNS queries to the
// resolver address, over UDP and TCP, are answered by a DNS that only knows
// the names the rules allow. Everything else the sandbox sends (IPv6, ICMP,
// other UDP, other IP protocols) is dropped before the stack sees it, so the
// stack never answers a ping or reports a closed port.
//
// The sandbox is hostile, and the daemon serves every sandbox, so what one
// sandbox can make it hold is bounded: TCP handshakes in progress
// (maxInFlight), open TCP flows (Options.MaxFlows), data left for closed
// flows (orphanTimeout), and DNS-over-TCP connections (maxDNSTCPConns, each
// closed after dnsTCPIdle without a query).
//
// This is the only package that imports gVisor (a test checks), so its
// size and churn stay in one place.
package netstack

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// DNSPort is the port the resolver listens on, UDP and TCP.
const DNSPort = 53

const nicID tcpip.NICID = 1

// TCP buffer limits. The defaults (1 MB, up to 4 MB) cap a single flow well
// below what the TUN path can carry; with receive-buffer moderation the
// window grows toward these only for flows that need it.
const (
	tcpRecvBufMax = 8 << 20
	tcpSendBufMax = 8 << 20
)

// maxInFlight bounds TCP handshakes in progress, so a sandbox sending a
// flood of SYNs costs at most this many goroutines.
const maxInFlight = 1024

// DefaultMaxFlows is Options.MaxFlows when it is zero. Every open flow
// costs the daemon, which serves all sandboxes, a few goroutines, an
// upstream socket in the gateway and the stack's buffers, which reach
// several MiB when the sandbox stops reading. Real clients stay far below
// 1024 at once (Chrome caps a whole browser at 256 sockets and 6 per host,
// npm at 15 per origin, and a process in the sandbox starts with a soft
// limit of 1024 descriptors), so it only stops a sandbox that opens flows
// to hold them, and bounds what one sandbox can pin in the daemon.
const DefaultMaxFlows = 1024

// orphanTimeout bounds how long a closed connection may keep data the
// sandbox has not acknowledged. Once its net.Conn is closed a connection
// no longer counts against MaxFlows, but the stack keeps it until the
// sandbox has taken the data still queued for it; without a bound a
// sandbox whose window stays closed (it acknowledges the stack's window
// probes but never reads) would keep it forever (RFC 1122 4.2.2.17), and
// could do that to any number of them. Linux kills such orphans after
// tcp_orphan_retries probes, about a minute and a half with its defaults.
// A variable only so that tests can shorten it; New copies it.
var orphanTimeout = 60 * time.Second

// flowWarnEvery is how often the "flow limit reached" warning may be logged
// per stack: a sandbox hammering the limit must not flood the log.
const flowWarnEvery = 10 * time.Second

// Options configures a Stack.
type Options struct {
	// TCP is called for every TCP connection the sandbox opens, after the
	// handshake, in a goroutine of its own. dst is the address and port the
	// sandbox connected to; name is the name this stack's DNS handed that
	// address out for, or "" if it did not (the sandbox dialled an address
	// it knew). TCP owns conn and must close it: until then the flow
	// counts against MaxFlows. conn also implements CloseWrite and
	// CloseRead for half-close.
	// If nil, every connection is reset.
	TCP func(conn net.Conn, dst netip.AddrPort, name string)

	// DNSAddr is the resolver address the sandbox's resolv.conf names
	// (usually the gateway address of its namespace). Required, IPv4.
	DNSAddr netip.Addr

	// Allow reports whether the DNS may answer for name (lower case, no
	// final dot). It may be called from several goroutines at once.
	// If nil, no name resolves.
	Allow func(name string) bool

	// Pool is where synthetic DNS answers come from. If zero, DefaultPool.
	Pool netip.Prefix

	// MaxFlows bounds the TCP connections the sandbox has open through
	// the stack at once. A connection counts from its SYN until the conn
	// handed to TCP is closed; a SYN beyond the limit is answered with a
	// reset (the sandbox sees ECONNREFUSED) and a warning is logged, at
	// most once every 10 s. If zero, DefaultMaxFlows.
	MaxFlows int

	// Logger receives debug lines about failed connections and a
	// warning when MaxFlows refuses one. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Stack is a userspace network stack serving one sandbox's TUN device.
type Stack struct {
	opts Options
	log  *slog.Logger
	dns  *DNS
	link *tunLink // on our duplicate of the TUN descriptor
	s    *stack.Stack

	udpDNS      *gonet.UDPConn
	tcpDNS      tcpip.Endpoint // listening; see listenDNSTCP
	tcpDNSQueue waiter.Queue   // tcpDNS's

	flows         atomic.Int64 // TCP flows counted against maxFlows
	maxFlows      int64
	flowWarn      logLimiter
	orphanTimeout time.Duration // copies of the variables, taken by New
	dnsTCPIdle    time.Duration

	done      chan struct{}  // closed by Close
	wg        sync.WaitGroup // DNS servers and their connections
	closeOnce sync.Once
}

// New starts a stack on tun, the daemon's end of a TUN device (IFF_TUN,
// IFF_NO_PI) whose MTU is mtu. It works on a duplicate of the descriptor,
// which it switches to non-blocking mode (the mode is shared with tun); the
// caller still owns and closes tun, before or after Close. Close stops the
// stack.
func New(tun *os.File, mtu int, opts Options) (*Stack, error) {
	if !opts.DNSAddr.Is4() {
		return nil, fmt.Errorf("new netstack: dns address %q: must be IPv4", opts.DNSAddr)
	}
	if mtu < 68 || mtu > 65535 {
		return nil, fmt.Errorf("new netstack: mtu %d: must be between 68 and 65535", mtu)
	}
	if opts.MaxFlows < 0 {
		return nil, fmt.Errorf("new netstack: max flows %d: must not be negative", opts.MaxFlows)
	}
	maxFlows := opts.MaxFlows
	if maxFlows == 0 {
		maxFlows = DefaultMaxFlows
	}
	dns, err := NewDNS(opts.Pool, opts.Allow)
	if err != nil {
		return nil, fmt.Errorf("new netstack: %w", err)
	}
	if dns.pool.Contains(opts.DNSAddr) {
		return nil, fmt.Errorf("new netstack: dns address %q is inside the pool %q", opts.DNSAddr, dns.pool)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	fd, err := dupFD(tun)
	if err != nil {
		return nil, fmt.Errorf("new netstack: %w", err)
	}
	st := &Stack{
		opts:     opts,
		log:      log.With("component", "netstack"),
		dns:      dns,
		maxFlows: int64(maxFlows),
		flowWarn: logLimiter{every: flowWarnEvery, now: time.Now},
		done:     make(chan struct{}),

		orphanTimeout: orphanTimeout,
		dnsTCPIdle:    dnsTCPIdle,
	}
	if err := st.start(fd, uint32(mtu)); err != nil {
		if st.s != nil {
			st.s.Destroy()
		}
		if st.link != nil {
			st.link.Close()
		} else {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("new netstack: %w", err)
	}
	return st, nil
}

// dupFD duplicates f's descriptor without going through f.Fd, which would
// put f into blocking mode.
func dupFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("tun descriptor: %w", err)
	}
	dup := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("tun descriptor: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("duplicate tun descriptor: %w", dupErr)
	}
	return dup, nil
}

func (st *Stack) start(fd int, mtu uint32) error {
	dnsAddr := tcpip.AddrFrom4(st.opts.DNSAddr.As4())
	link, err := newTUNLink(fd, mtu, dnsAddr)
	if err != nil {
		return err
	}
	st.link = link

	// IPv4 only: with no IPv6 protocol registered, and the filter in front,
	// IPv6 packets have nowhere to go. No ICMP transport either.
	st.s = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	s := st.s
	for _, opt := range []tcpip.SettableTransportProtocolOption{
		ptr(tcpip.TCPSACKEnabled(true)),
		// No RACK, and with it no tail loss probes: a probe fires after
		// twice the smoothed RTT, with no floor. Here the RTT is a few
		// hundred microseconds, but a sandbox on a busy host often takes
		// milliseconds to ACK, so each stall retransmitted a 32 KiB
		// segment that had arrived and cut the congestion window (1-3 %
		// of the segments of a 256 MiB download, all spurious). Nothing
		// on the way through tun0 drops packets under load, so SACK
		// recovery and the RTO are enough for the rare real loss.
		ptr(tcpip.TCPRecovery(0)),
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: tcpRecvBufMax},
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: tcpSendBufMax},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("tcp option %T: %s", opt, err)
		}
	}

	fwd := tcp.NewForwarder(s, 0, maxInFlight, st.forwardTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)

	// The NIC starts disabled: the link's reader runs from here on, and
	// must not see a half-configured stack.
	if err := s.CreateNICWithOptions(nicID, link, stack.NICOptions{Name: "tun", Disabled: true}); err != nil {
		return fmt.Errorf("create nic: %s", err)
	}
	// Promiscuous: accept packets for every destination address, so a
	// connection to any IP ends here. Spoofing: reply from that address.
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("promiscuous mode: %s", err)
	}
	if err := s.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("spoofing: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})

	// The resolver address is a real local address of the stack, so the
	// DNS servers can bind to it; the TCP listener on port 53 takes
	// precedence over the forwarder, which only sees unmatched packets.
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: dnsAddr.WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("add dns address: %s", err)
	}
	full := tcpip.FullAddress{NIC: nicID, Addr: dnsAddr, Port: DNSPort}
	st.udpDNS, err = gonet.DialUDP(s, &full, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("dns udp listener: %w", err)
	}
	if err := st.listenDNSTCP(full); err != nil {
		st.udpDNS.Close()
		return err
	}

	if err := s.EnableNIC(nicID); err != nil {
		return fmt.Errorf("enable nic: %s", err)
	}
	st.wg.Add(2)
	go st.serveDNSUDP()
	go st.serveDNSTCP()
	return nil
}

func ptr[T any](v T) *T { return &v }

// forwardTCP runs in a goroutine of its own (the forwarder starts one per
// SYN): it completes the handshake and gives the connection to Options.TCP.
//
// The flow takes its place under MaxFlows before the handshake, so that a
// flow over the limit is refused with a reset to its SYN rather than reset
// after the sandbox saw it open; the place is given back when the conn
// handed to Options.TCP is closed.
func (st *Stack) forwardTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := addrPort(id.LocalAddress, id.LocalPort)
	if st.opts.TCP == nil {
		r.Complete(true)
		return
	}
	if !st.takeFlow() {
		// Logged before the reset goes out, so that the line is there
		// by the time the sandbox sees the refusal.
		if ok, suppressed := st.flowWarn.allow(); ok {
			st.log.Warn("tcp flow refused", "reason", "flow limit reached", "max_flows", st.maxFlows, "dst", dst, "suppressed", suppressed)
		}
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		st.flows.Add(-1)
		st.log.Debug("tcp handshake failed", "dst", dst, "error", err.String())
		r.Complete(true) // reset, so the sandbox does not wait on a half-open connection
		return
	}
	r.Complete(false)
	c := &flowConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep, st: st}
	st.opts.TCP(c, dst, st.dns.NameFor(dst.Addr()))
}

// takeFlow counts one more flow if that stays within maxFlows.
func (st *Stack) takeFlow() bool {
	for {
		n := st.flows.Load()
		if n >= st.maxFlows {
			return false
		}
		if st.flows.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// flowConn is a connection handed to Options.TCP. Closing it, the first
// time only, gives its place under MaxFlows back. The embedded
// *gonet.TCPConn provides CloseRead and CloseWrite.
type flowConn struct {
	*gonet.TCPConn
	ep   tcpip.Endpoint
	st   *Stack
	once sync.Once
}

// Close closes the connection; later calls do nothing and return nil.
func (c *flowConn) Close() error {
	c.once.Do(func() {
		closeBounded(c.ep, c.st.orphanTimeout)
		c.st.flows.Add(-1)
	})
	return nil
}

// closeBounded closes ep gracefully (data already written is still
// delivered) but gives up on the connection, with a reset, if the sandbox
// leaves data unacknowledged for timeout (TCP_USER_TIMEOUT, RFC 5482):
// see orphanTimeout.
func closeBounded(ep tcpip.Endpoint, timeout time.Duration) {
	uto := tcpip.TCPUserTimeoutOption(timeout)
	ep.SetSockOpt(&uto)
	ep.Close()
}

// resetEndpoint closes ep with a reset (SO_LINGER of zero), so that
// nothing of it stays in the stack.
func resetEndpoint(ep tcpip.Endpoint) {
	ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	ep.Close()
}

// logLimiter lets one log line through per interval and counts the ones it
// held back in between. It is safe for concurrent use.
type logLimiter struct {
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	next       time.Time // when the next line may go out
	suppressed int
}

// allow reports whether a line may be logged now and, if so, how many
// lines were held back since the last one.
func (l *logLimiter) allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(l.every)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// NameFor returns the name this stack's DNS gave addr for, or "".
func (st *Stack) NameFor(addr netip.Addr) string {
	return st.dns.NameFor(addr)
}

// DNS returns the stack's resolver.
func (st *Stack) DNS() *DNS {
	return st.dns
}

// Dropped returns how many packets from the sandbox the filter has dropped
// (IPv6, ICMP, UDP other than DNS, other protocols).
func (st *Stack) Dropped() uint64 {
	return st.link.dropped.Load()
}

// Close stops the stack: open connections are reset, the DNS stops and the
// TUN descriptor is no longer read. Connections already handed to
// Options.TCP fail their next read or write (they still count against
// MaxFlows until closed, which no longer matters). Close always returns nil.
func (st *Stack) Close() error {
	st.closeOnce.Do(func() {
		close(st.done)
		st.udpDNS.Close()
		st.tcpDNS.Close()
		st.s.Close() // aborts every endpoint, which ends the DNS goroutines
		st.wg.Wait()
		// Stop the TUN reader before Stack.Wait: Wait holds the stack's
		// lock while it waits for the link, and a reader delivering a
		// packet needs that lock (a deadlock seen in tests).
		st.link.Close()
		st.s.Wait()
	})
	return nil
}
