package netstack

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/standin/standin/internal/policy"
)

// DefaultPool is where DNS answers come from unless Options.Pool says
// otherwise: the benchmarking range of RFC 2544, which no real host uses, so
// an address from it can only have come from this resolver.
var DefaultPool = netip.MustParsePrefix("198.18.0.0/15")

// answerTTL is the TTL of synthetic A records. The mapping never changes for
// the life of a sandbox, and rules are checked again on every connection, so
// a long cache in the sandbox does no harm.
const answerTTL = 300

// ErrMalformed is returned by DNS.Answer for a message it cannot even reply
// to (no readable header, or a response rather than a query): the caller
// drops it.
var ErrMalformed = errors.New("malformed dns query")

// DNS is the resolver a sandbox talks to. It answers A queries for names
// allow accepts with a synthetic address from its pool, one per name, and
// remembers which name each address stands for so that a later connection to
// it can be given the name (NameFor). The sandbox never learns a real
// address: the gateway resolves names itself when it dials.
//
// Replies:
//   - allowed name, type A: one synthetic address;
//   - allowed name, any other type: no records (NOERROR), so clients asking
//     AAAA or HTTPS first move on to A;
//   - name not allowed or not a valid host name: NXDOMAIN;
//   - opcode other than QUERY, class other than IN, not one question: NOTIMP
//     or FORMERR;
//   - pool exhausted: SERVFAIL.
//
// A DNS is safe for concurrent use.
type DNS struct {
	allow func(name string) bool
	pool  netip.Prefix

	mu     sync.Mutex
	next   netip.Addr // next address to hand out; invalid when the pool is used up
	byName map[string]netip.Addr
	byAddr map[netip.Addr]string
}

// NewDNS returns a resolver answering from pool (DefaultPool if zero) for the
// names allow accepts. A nil allow accepts nothing. The pool must be IPv4.
func NewDNS(pool netip.Prefix, allow func(name string) bool) (*DNS, error) {
	if !pool.IsValid() {
		pool = DefaultPool
	}
	if !pool.Addr().Is4() || pool.Bits() > 30 {
		return nil, fmt.Errorf("dns pool %q: must be an IPv4 prefix of at most /30", pool)
	}
	pool = pool.Masked()
	if allow == nil {
		allow = func(string) bool { return false }
	}
	return &DNS{
		allow: allow,
		pool:  pool,
		// The network address (all zero host bits) is skipped: some
		// clients treat it as invalid.
		next:   pool.Addr().Next(),
		byName: make(map[string]netip.Addr),
		byAddr: make(map[netip.Addr]string),
	}, nil
}

// NameFor returns the name a synthetic address was handed out for, or "" if
// this resolver never gave out addr.
func (d *DNS) NameFor(addr netip.Addr) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byAddr[addr.Unmap()]
}

// AddrFor returns the synthetic address handed out for name, if any.
func (d *DNS) AddrFor(name string) (netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.byName[name]
	return a, ok
}

// lookup returns name's synthetic address, allocating one on first use. It
// returns false if the pool is used up.
func (d *DNS) lookup(name string) (netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.byName[name]; ok {
		return a, true
	}
	a := d.next
	// The last address (all one host bits) is left out like the first.
	if !a.IsValid() || !d.pool.Contains(a.Next()) {
		return netip.Addr{}, false
	}
	d.next = a.Next()
	d.byName[name] = a
	d.byAddr[a] = name
	return a, true
}

// Answer returns the reply to the DNS query q (wire format, without the TCP
// length prefix). It returns ErrMalformed when no reply should be sent.
func (d *DNS) Answer(q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.Response {
		// Never answer a response: that is how reflection loops start.
		return nil, fmt.Errorf("%w: message is a response", ErrMalformed)
	}
	rh := dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
	}
	if h.OpCode != 0 {
		return reply(rh, dnsmessage.RCodeNotImplemented, nil, nil)
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return reply(rh, dnsmessage.RCodeFormatError, nil, nil)
	}
	question := qs[0]
	if question.Class != dnsmessage.ClassINET {
		return reply(rh, dnsmessage.RCodeNotImplemented, &question, nil)
	}
	name, ok := hostName(question.Name.String())
	if !ok || !d.allow(name) {
		return reply(rh, dnsmessage.RCodeNameError, &question, nil)
	}
	rh.Authoritative = true
	if question.Type != dnsmessage.TypeA {
		return reply(rh, dnsmessage.RCodeSuccess, &question, nil)
	}
	addr, ok := d.lookup(name)
	if !ok {
		return reply(rh, dnsmessage.RCodeServerFailure, &question, nil)
	}
	return reply(rh, dnsmessage.RCodeSuccess, &question, &dnsmessage.AResource{A: addr.As4()})
}

// reply builds a response with header h, rcode, the question (if known)
// and at most one A record.
func reply(h dnsmessage.Header, rcode dnsmessage.RCode, q *dnsmessage.Question, a *dnsmessage.AResource) ([]byte, error) {
	h.RCode = rcode
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil, fmt.Errorf("build dns reply: %w", err)
		}
		if err := b.Question(*q); err != nil {
			return nil, fmt.Errorf("build dns reply: %w", err)
		}
	}
	if a != nil {
		if err := b.StartAnswers(); err != nil {
			return nil, fmt.Errorf("build dns reply: %w", err)
		}
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: answerTTL}
		if err := b.AResource(rh, *a); err != nil {
			return nil, fmt.Errorf("build dns reply: %w", err)
		}
	}
	return b.Finish()
}

// hostName turns a query name into the form rules are written in (lower
// case, no final dot) and reports whether it is a plain host name: labels of
// letters, digits, '-' and '_'. Anything else (escapes, NUL, spaces) could
// mean one thing to the rules and another to whoever dials the name later, so
// it is refused before the rules see it.
func hostName(fqdn string) (string, bool) {
	name := policy.NormalizeHost(fqdn) // ASCII only: no Kelvin sign for "k"
	if name == "" || len(name) > 253 {
		return "", false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return name, true
}
