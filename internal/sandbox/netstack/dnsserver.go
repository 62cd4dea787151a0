package netstack

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// dnsTCPIdle is how long a DNS-over-TCP connection may sit between queries
// before it is closed, and how long a query or a reply may take to cross
// it (RFC 7766 section 6.2.3 suggests seconds, not minutes). A variable
// only so that tests can shorten it; New copies it.
var dnsTCPIdle = 10 * time.Second

// maxDNSTCPConns bounds the DNS-over-TCP connections one stack serves at
// once; the sandbox is the stack's only client, so it is the per-client
// limit RFC 7766 section 6.2.2 lets servers set. Resolvers open one
// connection per query or one for a run of queries, and use TCP only after
// a truncated UDP reply, which this DNS never sends (see serveDNSUDP), so 16
// is far above what a well-behaved sandbox uses. A connection beyond it is
// reset as soon as it is accepted, so it costs nothing past its handshake.
const maxDNSTCPConns = 16

// dnsTCPBuffer is the send and receive buffer of each DNS-over-TCP
// connection. Replies are under 512 bytes and a query at most 64 KiB, so
// the stack's defaults (1 MiB, tuned up to 8 MiB) would only let a client
// that pipelines queries and never reads the replies park more of them in
// the daemon.
const dnsTCPBuffer = 64 << 10

// listenDNSTCP starts the resolver's TCP listener. It is a tcpip endpoint
// rather than a gonet.TCPListener so that a connection over the limit can
// be reset (gonet gives no way to set SO_LINGER on what it accepts).
func (st *Stack) listenDNSTCP(addr tcpip.FullAddress) error {
	ep, err := st.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &st.tcpDNSQueue)
	if err != nil {
		return fmt.Errorf("dns tcp listener: %s", err)
	}
	if err := ep.Bind(addr); err != nil {
		ep.Close()
		return fmt.Errorf("dns tcp listener: bind: %s", err)
	}
	// The backlog only holds connections between their handshake and the
	// accept loop, which takes them at once.
	if err := ep.Listen(maxDNSTCPConns); err != nil {
		ep.Close()
		return fmt.Errorf("dns tcp listener: listen: %s", err)
	}
	st.tcpDNS = ep
	return nil
}

// serveDNSUDP answers queries on the resolver's UDP port until Close.
func (st *Stack) serveDNSUDP() {
	defer st.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := st.udpDNS.ReadFrom(buf)
		if err != nil {
			return
		}
		resp, err := st.dns.Answer(buf[:n])
		if err != nil {
			continue
		}
		// Replies are one question and at most one A record, far under
		// the 512 bytes plain UDP DNS allows, so no truncation is needed.
		if _, err := st.udpDNS.WriteTo(resp, from); err != nil {
			st.log.Debug("dns reply failed", "error", err)
		}
	}
}

// serveDNSTCP accepts DNS-over-TCP connections until Close, serving at most
// maxDNSTCPConns at once and resetting the others.
func (st *Stack) serveDNSTCP() {
	defer st.wg.Done()
	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	st.tcpDNSQueue.EventRegister(&entry)
	defer st.tcpDNSQueue.EventUnregister(&entry)
	slots := make(chan struct{}, maxDNSTCPConns)
	for {
		ep, wq, err := st.tcpDNS.Accept(nil)
		if _, ok := err.(*tcpip.ErrWouldBlock); ok {
			select {
			case <-ready:
				continue
			case <-st.done:
				return
			}
		}
		if err != nil {
			return // the listener is closed
		}
		select {
		case slots <- struct{}{}:
		default:
			st.log.Debug("dns tcp connection refused", "reason", "too many connections", "limit", maxDNSTCPConns)
			resetEndpoint(ep)
			continue
		}
		ops := ep.SocketOptions()
		ops.SetSendBufferSize(dnsTCPBuffer, true)
		ops.SetReceiveBufferSize(dnsTCPBuffer, true)
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer func() { <-slots }()
			c := gonet.NewTCPConn(wq, ep)
			st.serveDNSConn(c)
			closeBounded(ep, st.orphanTimeout)
		}()
	}
}

// serveDNSConn answers length-prefixed queries (RFC 1035 4.2.2) on c until
// the client closes it, goes idle or sends something unanswerable. Each
// query's buffer is taken once its length is known, so an idle connection
// holds none.
func (st *Stack) serveDNSConn(c net.Conn) {
	var prefix [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(st.dnsTCPIdle))
		if _, err := io.ReadFull(c, prefix[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(prefix[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp, err := st.dns.Answer(q)
		if err != nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		c.SetWriteDeadline(time.Now().Add(st.dnsTCPIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
