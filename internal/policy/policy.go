// Package policy decides whether a sandbox may reach a destination. Pure
// functions, no I/O, and it imports nothing of standin's.
//
// Rules: allowOut and denyOut hold exact domains, "*.domain" wildcards and
// IPv4/IPv6 CIDRs. A destination is refused when a deny rule matches it and no
// allow rule does (allow wins over deny). With no rules every public
// destination is reachable. Special addresses (loopback, private, link-local,
// CGNAT, multicast, unspecified, cloud metadata) are refused unless an allow
// CIDR contains them.
//
// The usual lock-down is allowOut ["api.anthropic.com"] with denyOut
// ["0.0.0.0/0"]: api.anthropic.com is reachable at whatever public address it
// resolves to, every other IPv4 destination is refused. Note that 0.0.0.0/0
// covers IPv4 only: a public IPv6 destination is still allowed unless denyOut
// also holds "::/0". IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are treated
// as the IPv4 address they carry, so they are covered by 0.0.0.0/0.
//
// A domain allow rule never unlocks a special address: a name the sandbox may
// reach that resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding) is still
// refused. Only an allow CIDR containing the address unlocks it.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// ErrInvalidRule is matched (errors.Is) by every error ParseRule returns.
var ErrInvalidRule = errors.New("invalid rule")

// RuleError is a rule that does not parse: the input and why.
type RuleError struct {
	Input  string
	Reason string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rule %q: %s", clip(e.Input), e.Reason)
}

// Is makes errors.Is(err, ErrInvalidRule) true.
func (e *RuleError) Is(target error) bool { return target == ErrInvalidRule }

// acceptedForms ends every syntax error so the user sees what to write.
const acceptedForms = `accepted forms: an exact domain ("api.example.com"), ` +
	`a wildcard ("*.example.com"), a CIDR ("10.0.0.0/8", "2001:db8::/32") ` +
	`or a bare IP ("192.0.2.1", "2001:db8::1")`

// clip keeps error messages readable when the input is huge.
func clip(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

type ruleKind uint8

const (
	kindNone     ruleKind = iota // zero Rule: matches nothing
	kindDomain                   // exact host name
	kindWildcard                 // any name strictly below domain
	kindCIDR                     // address prefix
)

// Rule is one parsed allowOut/denyOut entry. Rules are comparable with ==:
// two rules are equal when they match the same destinations. The zero Rule
// matches nothing.
type Rule struct {
	kind ruleKind
	// domain is lowercase, without trailing dot, and without "*." for a
	// wildcard.
	domain string
	prefix netip.Prefix // masked; IPv4 prefixes are never IPv4-mapped
}

// ParseRule parses "api.example.com", "*.example.com", "10.0.0.0/8",
// "2001:db8::/32" or a bare IP (a /32 or /128). Errors quote the input and
// say what forms are accepted.
//
// Domains are lowercased and lose a trailing dot; CIDRs are masked
// ("10.1.2.3/8" is "10.0.0.0/8"); IPv4-mapped IPv6 CIDRs are turned into the
// IPv4 CIDR they cover, because destinations are unmapped before matching.
// A wildcard must be the whole first label and must not cover a public
// suffix ("*.com", "*.co.uk", "*.github.io").
func ParseRule(s string) (Rule, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Rule{}, &RuleError{in, "empty; " + acceptedForms}
	}
	if strings.Contains(s, "://") {
		return Rule{}, &RuleError{in, "a URL is not a rule, write the host name alone; " + acceptedForms}
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Rule{}, &RuleError{in, "not a valid CIDR; " + acceptedForms}
		}
		return cidrRule(p), nil
	}
	if strings.Contains(s, ":") {
		return parseAddrRule(in, s)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return parseAddrRule(in, s)
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok && !strings.Contains(rest, "*") {
		d, reason := normalizeDomain(rest)
		if reason != "" {
			return Rule{}, &RuleError{in, reason + "; " + acceptedForms}
		}
		if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
			return Rule{}, &RuleError{in, fmt.Sprintf(
				"wildcard %q covers a public suffix; name a registrable domain such as %q",
				"*."+d, "*.example."+d)}
		}
		return Rule{kind: kindWildcard, domain: d}, nil
	}
	if strings.Contains(s, "*") {
		return Rule{}, &RuleError{in, `a wildcard must be the whole first label, as in "*.example.com"; ` + acceptedForms}
	}
	d, reason := normalizeDomain(s)
	if reason != "" {
		return Rule{}, &RuleError{in, reason + "; " + acceptedForms}
	}
	return Rule{kind: kindDomain, domain: d}, nil
}

func parseAddrRule(in, s string) (Rule, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Rule{}, &RuleError{in, "not a valid IP address (ports are not accepted); " + acceptedForms}
	}
	if a.Zone() != "" {
		// A zone names an interface of this machine; rules are about
		// destinations, which have none.
		return Rule{}, &RuleError{in, "an IPv6 zone (%...) is not allowed in a rule; " + acceptedForms}
	}
	return cidrRule(netip.PrefixFrom(a, a.BitLen())), nil
}

// cidrRule masks p and turns an IPv4-mapped IPv6 prefix into the IPv4 prefix
// it covers, since Decide unmaps destination addresses.
func cidrRule(p netip.Prefix) Rule {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return Rule{kind: kindCIDR, prefix: p.Masked()}
}

// String is the rule as written, in canonical form: lowercase domain, masked
// CIDR, a bare IP for a /32 or /128. It parses back to the same Rule.
func (r Rule) String() string {
	switch r.kind {
	case kindDomain:
		return r.domain
	case kindWildcard:
		return "*." + r.domain
	case kindCIDR:
		if r.prefix.IsSingleIP() {
			return r.prefix.Addr().String()
		}
		return r.prefix.String()
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler, so rules can sit in config
// files as strings.
func (r Rule) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseRule.
func (r *Rule) UnmarshalText(b []byte) error {
	p, err := ParseRule(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// IsCIDR reports whether r is an address rule (a CIDR or a bare IP).
func (r Rule) IsCIDR() bool { return r.kind == kindCIDR }

// Prefix is the rule's address prefix; the zero Prefix for a domain rule.
func (r Rule) Prefix() netip.Prefix { return r.prefix }

// IsWildcard reports whether r is a "*.domain" rule.
func (r Rule) IsWildcard() bool { return r.kind == kindWildcard }

// Domain is the host pattern of a domain rule ("api.example.com" or
// "*.example.com"); "" for an address rule.
func (r Rule) Domain() string {
	if r.kind == kindDomain || r.kind == kindWildcard {
		return r.String()
	}
	return ""
}

// matches reports whether d (host normalized, addr unmapped without zone)
// is covered by r.
func (r Rule) matches(host string, addr netip.Addr) bool {
	switch r.kind {
	case kindDomain:
		return host != "" && host == r.domain
	case kindWildcard:
		return matchWildcard(r.domain, host)
	case kindCIDR:
		return addr.IsValid() && r.prefix.Contains(addr)
	}
	return false
}

// Rules are a sandbox's parsed rules.
type Rules struct{ Allow, Deny []Rule }

// ParseRules parses both lists; errors name the list and the entry.
func ParseRules(allow, deny []string) (Rules, error) {
	var rs Rules
	var err error
	if rs.Allow, err = parseList("allowOut", allow); err != nil {
		return Rules{}, err
	}
	if rs.Deny, err = parseList("denyOut", deny); err != nil {
		return Rules{}, err
	}
	return rs, nil
}

func parseList(name string, in []string) ([]Rule, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]Rule, 0, len(in))
	for i, s := range in {
		r, err := ParseRule(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", name, i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Empty reports whether rs holds no rule at all (every public destination is
// reachable).
func (rs Rules) Empty() bool { return len(rs.Allow) == 0 && len(rs.Deny) == 0 }

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
//
// A domain rule matches d.Host; a CIDR rule matches d.Addr (IPv4-mapped IPv6
// addresses are unmapped first, zones dropped). If d.Addr is unset and d.Host
// is an IP literal, the literal is used as the address. Then, in order:
//
//  1. d.Addr is special (IsSpecial): allowed only if an allow CIDR that lies
//     within special-purpose space contains it (10.0.0.0/8, 127.0.0.0/8,
//     169.254.169.254/32: ReasonAllowSpecial), else refused
//     (ReasonSpecialAddr). Neither a domain allow rule (DNS rebinding) nor
//     a broad CIDR such as 0.0.0.0/0 unlocks it.
//  2. Any allow rule matches: allowed (ReasonAllowRule).
//  3. Any deny rule matches: refused (ReasonDenyRule).
//  4. Otherwise allowed (ReasonDefault).
//
// With allowOut ["api.anthropic.com"] and denyOut ["0.0.0.0/0"]:
// {api.anthropic.com, 1.2.3.4} is allowed, {evil.com, 5.6.7.8} and
// {"", 1.2.3.4} are refused, and a public IPv6 address is allowed because
// 0.0.0.0/0 does not cover IPv6: deny "::/0" as well to refuse it.
//
// A name without an address ({evil.com, no address}: what the sandbox's DNS
// and the gateway's first check ask) is refused by a deny of a whole address
// family (0.0.0.0/0 or ::/0) unless an allow rule names it: the gateway never
// resolves names the rules leave no address for.
func (rs Rules) Decide(d Dest) Decision {
	host := NormalizeHost(d.Host)
	addr := d.Addr
	if !addr.IsValid() {
		if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
			addr = a
		}
	}
	if addr.IsValid() {
		addr = addr.Unmap().WithZone("")
		if special, _ := IsSpecial(addr); special {
			for _, r := range rs.Allow {
				if r.kind == kindCIDR && r.matches("", addr) && specialPrefix(r.prefix) {
					return Decision{Allow: true, Reason: ReasonAllowSpecial, Rule: r.String()}
				}
			}
			return Decision{Allow: false, Reason: ReasonSpecialAddr}
		}
	}
	for _, r := range rs.Allow {
		if r.matches(host, addr) {
			return Decision{Allow: true, Reason: ReasonAllowRule, Rule: r.String()}
		}
	}
	for _, r := range rs.Deny {
		if r.matches(host, addr) {
			return Decision{Allow: false, Reason: ReasonDenyRule, Rule: r.String()}
		}
	}
	if !addr.IsValid() && host != "" {
		// A name alone, before any address is known (DNS, the gateway's
		// first check): a deny of a whole address family means "only what
		// allowOut names". Answering other names would only have every
		// address refused later, after the gateway resolved them, and
		// resolving names the sandbox makes up is a DNS side channel.
		for _, r := range rs.Deny {
			if r.kind == kindCIDR && r.prefix.Bits() == 0 {
				return Decision{Allow: false, Reason: ReasonDenyRule, Rule: r.String()}
			}
		}
	}
	return Decision{Allow: true, Reason: ReasonDefault}
}
