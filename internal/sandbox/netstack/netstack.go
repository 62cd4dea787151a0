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

// Options configures a Stack.
type Options struct {
	// TCP is called for every TCP connection the sandbox opens, after the
	// handshake, in a goroutine of its own. dst is the address and port the
	// sandbox connected to; name is the name this stack's DNS handed that
	// address out for, or "" if it did not (the sandbox dialled an address
	// it knew). TCP owns conn and must close it. conn also implements
	// CloseWrite and CloseRead for half-close.
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

	// Logger receives debug lines about failed connections.
	// If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Stack is a userspace network stack serving one sandbox's TUN device.
type Stack struct {
	opts Options
	log  *slog.Logger
	dns  *DNS
	link *tunLink // on our duplicate of the TUN descriptor
	s    *stack.Stack

	udpDNS *gonet.UDPConn
	tcpDNS *gonet.TCPListener

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
	st := &Stack{opts: opts, log: log.With("component", "netstack"), dns: dns}
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
	st.tcpDNS, err = gonet.ListenTCP(s, full, ipv4.ProtocolNumber)
	if err != nil {
		st.udpDNS.Close()
		return fmt.Errorf("dns tcp listener: %w", err)
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
func (st *Stack) forwardTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	if st.opts.TCP == nil {
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		st.log.Debug("tcp handshake failed", "dst", addrPort(id.LocalAddress, id.LocalPort), "error", err.String())
		r.Complete(true) // reset, so the sandbox does not wait on a half-open connection
		return
	}
	r.Complete(false)
	dst := addrPort(id.LocalAddress, id.LocalPort)
	st.opts.TCP(gonet.NewTCPConn(&wq, ep), dst, st.dns.NameFor(dst.Addr()))
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
// Options.TCP fail their next read or write. Close always returns nil.
func (st *Stack) Close() error {
	st.closeOnce.Do(func() {
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
