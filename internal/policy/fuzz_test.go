package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"api.example.com", "*.example.com", "*.co.uk", "10.0.0.0/8", "::/0",
		"2001:db8::1", "::ffff:10.0.0.0/104", "fe80::1%eth0", "*", "a..b", "127.1",
		"API.Example.COM.", " 1.2.3.4 ", "0x7f.0x1", "*.github.io",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			if r != (Rule{}) {
				t.Errorf("ParseRule(%q) = %v with error %v, want the zero Rule", s, r, err)
			}
			return
		}
		if r == (Rule{}) {
			t.Fatalf("ParseRule(%q) = zero Rule with no error", s)
		}
		again, err := ParseRule(r.String())
		if err != nil {
			t.Fatalf("ParseRule(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		if again != r {
			t.Errorf("ParseRule(%q) = %#v, ParseRule(%q) = %#v, want equal", s, r, r.String(), again)
		}
		if r.IsCIDR() {
			p := r.Prefix()
			if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Errorf("ParseRule(%q).Prefix() = %v, want masked, unmapped, no zone", s, p)
			}
		} else {
			// A wildcard matches names below its domain and not the domain;
			// an exact rule the reverse.
			d := strings.TrimPrefix(r.Domain(), "*.")
			if got := MatchHost(r.Domain(), "x."+d); got != r.IsWildcard() {
				t.Errorf("MatchHost(%q, %q) = %v, want %v", r.Domain(), "x."+d, got, r.IsWildcard())
			}
			if got := MatchHost(r.Domain(), d); got == r.IsWildcard() {
				t.Errorf("MatchHost(%q, %q) = %v, want %v", r.Domain(), d, got, !r.IsWildcard())
			}
		}
	})
}

func FuzzDecide(f *testing.F) {
	f.Add("api.anthropic.com", "0.0.0.0/0", "api.anthropic.com", []byte{1, 2, 3, 4})
	f.Add("10.0.0.0/8", "", "", []byte{10, 0, 0, 1})
	f.Add("*.example.com", "::/0", "a.example.com", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("", "evil.com", "EVIL.com.", []byte{})
	f.Add("::ffff:127.0.0.0/104", "", "", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1})
	f.Fuzz(func(t *testing.T, allow, deny, host string, addrBytes []byte) {
		var rs Rules
		if r, err := ParseRule(allow); err == nil {
			rs.Allow = append(rs.Allow, r)
		}
		if r, err := ParseRule(deny); err == nil {
			rs.Deny = append(rs.Deny, r)
		}
		addr, _ := netip.AddrFromSlice(addrBytes)
		d := Dest{Host: host, Addr: addr}
		got := rs.Decide(d)

		// Decide takes the address from an IP-literal host when Addr is
		// unset.
		eff := addr
		if !eff.IsValid() {
			eff, _ = netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "."), "["), "]"))
		}
		special := false
		if eff.IsValid() {
			special, _ = IsSpecial(eff)
		}
		switch got.Reason {
		case ReasonAllowSpecial:
			if !got.Allow || !special || len(rs.Allow) != 1 || !rs.Allow[0].IsCIDR() || got.Rule != rs.Allow[0].String() {
				t.Errorf("Decide(%+v) with %v = %+v: not a special address unlocked by an allow CIDR", d, rs, got)
			}
			if !rs.Allow[0].Prefix().Contains(eff.Unmap().WithZone("")) {
				t.Errorf("Decide(%+v) = %+v: allow CIDR does not contain the address", d, got)
			}
		case ReasonSpecialAddr:
			if got.Allow || got.Rule != "" {
				t.Errorf("Decide(%+v) = %+v, want a refusal naming no rule", d, got)
			}
		case ReasonAllowRule:
			if !got.Allow || special || got.Rule != rs.Allow[0].String() {
				t.Errorf("Decide(%+v) with %v = %+v, want the allow rule", d, rs, got)
			}
		case ReasonDenyRule:
			if got.Allow || special || got.Rule != rs.Deny[0].String() {
				t.Errorf("Decide(%+v) with %v = %+v, want the deny rule", d, rs, got)
			}
		case ReasonDefault:
			if !got.Allow || special || got.Rule != "" {
				t.Errorf("Decide(%+v) with %v = %+v", d, rs, got)
			}
		default:
			t.Errorf("Decide(%+v) reason %q is not one of the fixed reasons", d, got.Reason)
		}
		// A special address is never allowed by a domain rule alone.
		if special && got.Allow && got.Reason != ReasonAllowSpecial {
			t.Errorf("Decide(%+v) with %v = %+v: special address allowed", d, rs, got)
		}
		// With no rules, exactly the public addresses are reachable.
		if (Rules{}).Decide(d).Allow == special {
			t.Errorf("Decide(%+v) with no rules = %+v, special %v", d, (Rules{}).Decide(d), special)
		}
	})
}
