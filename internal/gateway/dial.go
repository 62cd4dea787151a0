package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/standin/standin/internal/policy"
)

// dialTimeout bounds one connection attempt, so an address that drops SYNs
// does not stop the next one from being tried.
const dialTimeout = 10 * time.Second

// Dialer connects to upstreams by name, never trusting an address the
// sandbox chose: it resolves the name itself, checks every address, and
// dials only addresses that pass.
type Dialer struct {
	// Resolver looks names up. If nil, net.DefaultResolver is used.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// Overrides route a host name to fixed addresses with ports, from the
	// server's config only (tests, internal LLM gateways). Keys are
	// lowercase names without a trailing dot (ParseOverrides makes them).
	// An override target is trusted config: it skips the special-address
	// check, but not the Guard; the host name itself must still pass the
	// domain rules, and (unless a domain rule allows the name) a target in
	// a deny CIDR no allow CIDR covers is refused.
	Overrides map[string][]netip.AddrPort
	// Guard lists the only prefixes the gateway may ever dial, checked
	// before the rules. If nil, every address the rules allow (so a
	// special-purpose address only through an allowOut CIDR containing
	// it). Tests set it to 127.0.0.0/8.
	Guard []netip.Prefix

	// dialFunc connects; nil means a net.Dialer with dialTimeout. Tests
	// set it to see every address the Dialer tries.
	dialFunc func(ctx context.Context, network, address string) (net.Conn, error)
}

// DialError says why a dial was refused; Reason is fixed text tests assert.
type DialError struct {
	Host, Reason string
	Addr         netip.Addr
	// Err is the resolver's error behind ReasonNoAddr, if any. It is not
	// part of Error(): it can name this machine's DNS server.
	Err error
}

func (e *DialError) Error() string { return "dial " + e.Host + ": " + e.Reason }

// Unwrap returns the resolver error, so callers can tell a cancelled
// context from a name that does not exist.
func (e *DialError) Unwrap() error { return e.Err }

// Fixed refusal reasons.
const (
	ReasonGuard   = "address outside the upstream dial guard"
	ReasonSpecial = "resolves to a special-purpose address"
	ReasonDenied  = "address denied by network rules"
	ReasonNoAddr  = "name does not resolve"
)

// Dial connects to host:port over TCP. host is a name or an IP literal
// (brackets allowed). A name listed in Overrides goes to the override
// targets (with their ports; port is ignored) without resolving. Otherwise
// each resolved address (IPv4-mapped IPv6 unmapped, zones dropped) must be
// inside Guard (when set), then allowed by
// rules.Decide(policy.Dest{Host: host, Addr: a}) (special addresses need an
// allow CIDR, even inside the Guard). Passing addresses are dialed in order
// and the first that connects is used. If none passes, a *DialError with
// the reason of the first refused address; if some passed but none
// connected, the last connection error.
func (d *Dialer) Dial(ctx context.Context, host, port string, rules policy.Rules) (net.Conn, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, &DialError{Host: host, Reason: ReasonNoAddr}
	}
	targets, refused, err := d.targets(ctx, host, port, rules)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		if refused == nil {
			return nil, &DialError{Host: host, Reason: ReasonNoAddr}
		}
		return nil, refused
	}
	dial := d.dialFunc
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout}).DialContext
	}
	var last error
	for _, t := range targets {
		c, err := dial(ctx, "tcp", t.String())
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s: %w", host, last)
}

// targets returns the addresses Dial may connect to, in order, and the
// refusal of the first address that did not pass.
func (d *Dialer) targets(ctx context.Context, host, port string, rules policy.Rules) ([]netip.AddrPort, *DialError, error) {
	var (
		out     []netip.AddrPort
		refused *DialError
	)
	refuse := func(a netip.Addr, reason string) {
		if refused == nil {
			refused = &DialError{Host: host, Reason: reason, Addr: a}
		}
	}

	if ovr, ok := d.Overrides[normalizeName(host)]; ok {
		if !rules.Decide(policy.Dest{Host: host}).Allow {
			return nil, &DialError{Host: host, Reason: ReasonDenied}, nil
		}
		for _, ap := range ovr {
			a := ap.Addr().Unmap().WithZone("")
			if reason := d.refusal(host, a, rules); reason != "" {
				refuse(a, reason)
				continue
			}
			out = append(out, netip.AddrPortFrom(a, ap.Port()))
		}
		return out, refused, nil
	}

	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, nil, fmt.Errorf("dial %s: invalid port %q", host, port)
	}

	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		var r interface {
			LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
		} = net.DefaultResolver
		if d.Resolver != nil {
			r = d.Resolver
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, nil, &DialError{Host: host, Reason: ReasonNoAddr, Err: err}
		}
	}

	for _, a := range addrs {
		// A zone picks an interface of this machine; upstreams have none.
		a = a.Unmap().WithZone("")
		if reason := d.refusal(host, a, rules); reason != "" {
			refuse(a, reason)
			continue
		}
		out = append(out, netip.AddrPortFrom(a, uint16(p)))
	}
	return out, refused, nil
}

// refusal says why rules (or the guard) do not let the gateway connect to
// a for host, or returns "" if they do: the check Dial makes of each
// address, also made again of open connections after a rules change.
func (d *Dialer) refusal(host string, a netip.Addr, rules policy.Rules) string {
	if !a.IsValid() {
		return ReasonSpecial
	}
	a = a.Unmap().WithZone("")
	if _, ok := d.Overrides[normalizeName(host)]; ok {
		// Trusted config chose a, so it skips the special-address
		// check; the host name is the sandbox's, so the domain rules
		// judge it. The CIDR rules still judge a as they would a
		// resolved address: otherwise allowOut ["a.com"] with denyOut
		// ["0.0.0.0/0"] would let an overridden name through.
		dec := rules.Decide(policy.Dest{Host: host})
		if !dec.Allow || (dec.Reason != policy.ReasonAllowRule && cidrDenied(rules, a)) {
			return ReasonDenied
		}
	} else if dec := rules.Decide(policy.Dest{Host: host, Addr: a}); !dec.Allow {
		// The rules first, so that the refusal names the real defence;
		// the guard is the last line, whatever the rules said.
		if dec.Reason == policy.ReasonSpecialAddr {
			return ReasonSpecial
		}
		return ReasonDenied
	}
	if !d.guarded(a) {
		return ReasonGuard
	}
	return ""
}

// cidrDenied reports whether a deny CIDR of rules covers a and no allow
// CIDR does (allow wins over deny).
func cidrDenied(rules policy.Rules, a netip.Addr) bool {
	for _, r := range rules.Allow {
		if r.IsCIDR() && r.Prefix().Contains(a) {
			return false
		}
	}
	for _, r := range rules.Deny {
		if r.IsCIDR() && r.Prefix().Contains(a) {
			return true
		}
	}
	return false
}

// guarded reports whether a may be dialed at all.
func (d *Dialer) guarded(a netip.Addr) bool {
	if d.Guard == nil {
		return true
	}
	for _, p := range d.Guard {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func normalizeName(host string) string { return policy.NormalizeHost(host) }

// ParseGuard parses the dial guard from config: CIDRs or bare IPs.
// IPv4-mapped IPv6 prefixes become the IPv4 prefix they cover, because
// Dial unmaps addresses before checking them. An empty list returns nil,
// which means no guard.
func ParseGuard(cidrs []string) ([]netip.Prefix, error) {
	if len(cidrs) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for i, s := range cidrs {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("guard[%d]: %q is not a CIDR such as %q", i, cidrs[i], "127.0.0.0/8")
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("guard[%d]: %q is not a CIDR such as %q", i, cidrs[i], "127.0.0.0/8")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validName reports whether s is a lowercase DNS name: dot-separated
// labels of letters, digits, '-' and '_' (seen in real service names).
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ErrOverride is matched (errors.Is) by every error ParseOverrides returns.
var ErrOverride = errors.New("invalid upstream override")

// ParseOverrides parses the upstream overrides from config: host name to
// "127.0.0.1:9443" or a comma-separated list of such addresses with ports.
// Names are lowercased and lose a trailing dot; a key that is an IP literal
// is refused, since overrides route names. Errors name the key.
func ParseOverrides(m map[string]string) (map[string][]netip.AddrPort, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string][]netip.AddrPort, len(m))
	// Sorted so the same bad config always reports the same key.
	for _, key := range slices.Sorted(maps.Keys(m)) {
		name := normalizeName(strings.TrimSpace(key))
		if _, err := netip.ParseAddr(name); err == nil {
			return nil, fmt.Errorf("override %q: %w: want a host name, not an IP address", key, ErrOverride)
		}
		if !validName(name) {
			return nil, fmt.Errorf("override %q: %w: want a host name", key, ErrOverride)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("override %q: %w: host listed twice", key, ErrOverride)
		}
		var aps []netip.AddrPort
		for part := range strings.SplitSeq(m[key], ",") {
			ap, err := netip.ParseAddrPort(strings.TrimSpace(part))
			if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
				return nil, fmt.Errorf("override %q: %w: %q is not an address with port such as %q",
					key, ErrOverride, part, "127.0.0.1:9443")
			}
			aps = append(aps, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		out[name] = aps
	}
	return out, nil
}
