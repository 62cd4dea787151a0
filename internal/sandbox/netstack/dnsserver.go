package netstack

import (
	"encoding/binary"
	"io"
	"net"
	"time"
)

// dnsTCPIdle is how long a DNS-over-TCP connection may sit between queries
// before it is closed (RFC 7766 suggests seconds, not minutes).
const dnsTCPIdle = 10 * time.Second

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

// serveDNSTCP accepts DNS-over-TCP connections until Close.
func (st *Stack) serveDNSTCP() {
	defer st.wg.Done()
	for {
		c, err := st.tcpDNS.Accept()
		if err != nil {
			return
		}
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer c.Close()
			st.serveDNSConn(c)
		}()
	}
}

// serveDNSConn answers length-prefixed queries (RFC 1035 4.2.2) on c until
// the client closes it, goes idle or sends something unanswerable.
func (st *Stack) serveDNSConn(c net.Conn) {
	buf := make([]byte, 2+65535)
	for {
		c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf[:2]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		resp, err := st.dns.Answer(buf[:n])
		if err != nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		c.SetWriteDeadline(time.Now().Add(dnsTCPIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
