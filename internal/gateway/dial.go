package gateway

import (
	"context"
	"net"
	"net/netip"

	"github.com/standin/standin/internal/policy"
)

// Dialer connects to upstreams by name, never trusting an address the
// sandbox chose: it resolves the name itself, checks every address, and
// dials only addresses that pass.
type Dialer struct {
	// Resolver looks names up. If nil, net.DefaultResolver is used.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// Overrides route a host name to fixed addresses with ports, from the
	// server's config only (tests, internal LLM gateways). An override
	// target skips the special-address check but not the Guard.
	Overrides map[string][]netip.AddrPort
	// Guard lists the only prefixes the gateway may ever dial. If nil,
	// every public address (no special-purpose address at all, whatever
	// the rules say). Tests set it to 127.0.0.0/8.
	Guard []netip.Prefix
}

// DialError says why a dial was refused; Reason is fixed text tests assert.
type DialError struct {
	Host, Reason string
	Addr         netip.Addr
}

func (e *DialError) Error() string { return "dial " + e.Host + ": " + e.Reason }

// Fixed refusal reasons.
const (
	ReasonGuard   = "address outside the upstream dial guard"
	ReasonSpecial = "resolves to a special-purpose address"
	ReasonDenied  = "address denied by network rules"
	ReasonNoAddr  = "name does not resolve"
)

// Dial connects to host:port over TCP. Each resolved address is checked
// with rules.Decide(policy.Dest{Host: host, Addr: a}) (special addresses
// need an allow CIDR), then against Guard; the first address that passes
// and connects is used. If none passes, a *DialError.
func (d *Dialer) Dial(ctx context.Context, host, port string, rules policy.Rules) (net.Conn, error) {
	panic("TODO")
}
