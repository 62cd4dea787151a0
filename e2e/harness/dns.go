package harness

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// RebindDNS is the gateway's only DNS server in these tests
// (gateway.resolver). It knows the rebinding names below and answers
// NXDOMAIN to everything else, so no upstream lookup can ever name an
// address off this machine. The addresses it gives are ones the gateway must
// refuse: with its dial guard at 127.0.0.0/8 a broken check still sends
// nothing off the machine.
var RebindRecords = map[string][]netip.Addr{
	"rebind-loopback.e2e.test.": {netip.MustParseAddr("127.0.0.1")},
	"rebind-private.e2e.test.":  {netip.MustParseAddr("10.0.0.1")},
	"rebind-metadata.e2e.test.": {netip.MustParseAddr("169.254.169.254")},
	"rebind-v6.e2e.test.":       {netip.MustParseAddr("::1")},
	// Public first, then private: the gateway must check every address.
	"rebind-mixed.e2e.test.": {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("10.0.0.1")},
}

type RebindDNS struct {
	Addr string // 127.0.0.1:port, UDP and TCP
	udp  net.PacketConn
	tcp  net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	queries []string
}

// Queries lists every name asked so far, lowercase with the final dot, in
// order: what a DNS tunnel through the gateway's resolver would leak.
func (d *RebindDNS) Queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queries)
}

func startRebindDNS() (*RebindDNS, error) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		udp.Close()
		return nil, err
	}
	d := &RebindDNS{Addr: udp.LocalAddr().String(), udp: udp, tcp: tcp}
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				udp.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n [2]byte
				for {
					if _, err := io.ReadFull(c, n[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(n[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					resp := d.answer(q)
					if resp == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp))))
					c.Write(resp)
				}
			}()
		}
	}()
	return d, nil
}

func (d *RebindDNS) close() {
	d.udp.Close()
	d.tcp.Close()
	d.wg.Wait()
}

// answer builds the reply to one query; nil if it cannot be parsed.
func (d *RebindDNS) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(question.Name.String())
	d.mu.Lock()
	d.queries = append(d.queries, name)
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	addrs, known := RebindRecords[name]
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		switch {
		case a.Is4() && question.Type == dnsmessage.TypeA:
			b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case a.Is6() && question.Type == dnsmessage.TypeAAAA:
			b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
