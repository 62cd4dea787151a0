// Package policy decides whether a sandbox may reach a destination. Pure
// functions, no I/O, and it imports nothing of standin's.
//
// Rules: allowOut and denyOut hold exact domains, "*.domain" wildcards and
// IPv4/IPv6 CIDRs. A destination is refused when a deny rule matches it and no
// allow rule does (allow wins over deny). With no rules every public
// destination is reachable. Special addresses (loopback, private, link-local,
// CGNAT, multicast, unspecified, cloud metadata) are refused unless an allow
// CIDR contains them.
package policy

import "net/netip"

// Rule is one parsed allowOut/denyOut entry.
type Rule struct{}

// ParseRule parses "api.example.com", "*.example.com", "10.0.0.0/8",
// "2001:db8::/32" or a bare IP (a /32 or /128). Errors quote the input and
// say what forms are accepted.
func ParseRule(s string) (Rule, error) { panic("TODO") }

// String is the rule as written.
func (r Rule) String() string { panic("TODO") }

// Rules are a sandbox's parsed rules.
type Rules struct{ Allow, Deny []Rule }

// ParseRules parses both lists; errors name the list and the entry.
func ParseRules(allow, deny []string) (Rules, error) { panic("TODO") }

// Dest is what is being reached: a host name, an address, or both.
type Dest struct {
	Host string
	Addr netip.Addr
}

// Decision is the outcome with a fixed reason and the rule that decided
// (empty when none did).
type Decision struct {
	Allow  bool
	Reason string
	Rule   string
}

// Fixed reasons, asserted by tests.
const (
	ReasonAllowRule    = "allowed by allowOut rule"
	ReasonDenyRule     = "denied by denyOut rule"
	ReasonDefault      = "no rule matched: public destination allowed"
	ReasonSpecialAddr  = "special-purpose address not allowed"
	ReasonAllowSpecial = "special-purpose address allowed by allowOut CIDR"
)

// Decide applies rs to d.
func (rs Rules) Decide(d Dest) Decision { panic("TODO") }

// MatchHost reports whether host matches pattern (exact, or "*.d" matching
// any name below d but not d itself), case-insensitively.
func MatchHost(pattern, host string) bool { panic("TODO") }

// IsSpecial reports whether addr is not a public unicast address, with a
// short kind ("loopback", "private", "metadata", ...).
func IsSpecial(addr netip.Addr) (bool, string) { panic("TODO") }
