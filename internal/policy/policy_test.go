package policy

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		name, in, want string
		cidr, wildcard bool
	}{
		{"exact domain", "api.example.com", "api.example.com", false, false},
		{"uppercase lowered", "API.Example.COM", "api.example.com", false, false},
		{"trailing dot stripped", "api.example.com.", "api.example.com", false, false},
		{"surrounding space trimmed", "  api.example.com ", "api.example.com", false, false},
		{"single label", "localhost", "localhost", false, false},
		{"leading digit label", "1password.com", "1password.com", false, false},
		{"punycode", "xn--bcher-kva.example", "xn--bcher-kva.example", false, false},
		{"wildcard", "*.example.com", "*.example.com", false, true},
		{"wildcard registrable under multi-label suffix", "*.example.co.uk", "*.example.co.uk", false, true},
		{"wildcard uppercase trailing dot", "*.Example.COM.", "*.example.com", false, true},
		{"ipv4 cidr", "10.0.0.0/8", "10.0.0.0/8", true, false},
		{"ipv4 cidr masked", "10.1.2.3/8", "10.0.0.0/8", true, false},
		{"ipv4 everything", "0.0.0.0/0", "0.0.0.0/0", true, false},
		{"ipv6 cidr", "2001:db8::/32", "2001:db8::/32", true, false},
		{"ipv6 cidr masked", "2001:db8:1:2::/32", "2001:db8::/32", true, false},
		{"ipv6 everything", "::/0", "::/0", true, false},
		{"bare ipv4", "192.0.2.1", "192.0.2.1", true, false},
		{"ipv4 slash 32 prints bare", "192.0.2.1/32", "192.0.2.1", true, false},
		{"bare ipv6", "2001:DB8::1", "2001:db8::1", true, false},
		{"ipv4-mapped bare unmapped", "::ffff:10.0.0.1", "10.0.0.1", true, false},
		{"ipv4-mapped cidr unmapped", "::ffff:10.0.0.0/104", "10.0.0.0/8", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if err != nil {
				t.Fatalf("ParseRule(%q) error: %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("ParseRule(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
			if r.IsCIDR() != tt.cidr || r.IsWildcard() != tt.wildcard {
				t.Errorf("ParseRule(%q): IsCIDR %v IsWildcard %v, want %v %v", tt.in, r.IsCIDR(), r.IsWildcard(), tt.cidr, tt.wildcard)
			}
			if tt.cidr != r.Prefix().IsValid() {
				t.Errorf("ParseRule(%q).Prefix() = %v, valid want %v", tt.in, r.Prefix(), tt.cidr)
			}
			if tt.cidr == (r.Domain() != "") {
				t.Errorf("ParseRule(%q).Domain() = %q", tt.in, r.Domain())
			}
			again, err := ParseRule(r.String())
			if err != nil || again != r {
				t.Errorf("ParseRule(%q) = %v, %v; want the same rule as ParseRule(%q)", r.String(), again, err, tt.in)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // substring of the message
	}{
		{"empty", "", "empty"},
		{"blank", "   ", "empty"},
		{"star alone", "*", "wildcard must be the whole first label"},
		{"star in label", "a*.example.com", "wildcard must be the whole first label"},
		{"star not first", "api.*.example.com", "wildcard must be the whole first label"},
		{"double wildcard", "*.*.example.com", "wildcard must be the whole first label"},
		{"wildcard dot only", "*.", "empty domain name"},
		{"wildcard on com", "*.com", `wildcard "*.com" covers a public suffix; name a registrable domain such as "*.example.com"`},
		{"wildcard on co.uk", "*.co.uk", `wildcard "*.co.uk" covers a public suffix; name a registrable domain such as "*.example.co.uk"`},
		{"wildcard on private suffix", "*.github.io", "covers a public suffix"},
		{"wildcard on unknown tld", "*.internal", "covers a public suffix"},
		{"underscore", "my_host.example.com", `invalid character '_'`},
		{"space inside", "api example.com", `invalid character ' '`},
		{"empty label", "api..example.com", "empty label"},
		{"leading dot", ".example.com", "empty label"},
		{"two trailing dots", "example.com..", "empty label"},
		{"leading hyphen", "-api.example.com", "starts or ends with a hyphen"},
		{"trailing hyphen", "api-.example.com", "starts or ends with a hyphen"},
		{"label too long", strings.Repeat("a", 64) + ".com", "longer than 63"},
		{"name too long", strings.Repeat(strings.Repeat("a", 63)+".", 4) + "com", "longer than 253"},
		{"non-ascii", "bücher.example", "punycode"},
		{"short ipv4", "127.1", "looks like an IP address"},
		{"bad ipv4", "256.1.1.1", "looks like an IP address"},
		{"hex ipv4 label", "10.0x1", "looks like an IP address"},
		{"url", "https://api.example.com/", "a URL is not a rule"},
		{"host and port", "api.example.com:443", "not a valid IP address"},
		{"bad cidr bits", "10.0.0.0/33", "not a valid CIDR"},
		{"cidr with spaces", "10.0.0.0 /8", "not a valid CIDR"},
		{"domain with slash", "example.com/8", "not a valid CIDR"},
		{"zone", "fe80::1%eth0", "zone"},
		{"bracketed ipv6", "[::1]", "not a valid IP address"},
		{"leading zero ipv4", "010.0.0.1", "looks like an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if err == nil {
				t.Fatalf("ParseRule(%q) = %v, want error containing %q", tt.in, r, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("ParseRule(%q) error = %q, want it to contain %q", tt.in, msg, tt.want)
			}
			if !errors.Is(err, ErrInvalidRule) {
				t.Errorf("ParseRule(%q) error %v is not ErrInvalidRule", tt.in, err)
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Input != tt.in {
				t.Errorf("ParseRule(%q) error %#v: want *RuleError with the input", tt.in, err)
			}
			if !strings.Contains(msg, `rule "`) {
				t.Errorf("ParseRule(%q) error = %q: want the input quoted", tt.in, msg)
			}
			if !strings.Contains(tt.name, "wildcard on") && !strings.Contains(msg, "accepted forms") {
				t.Errorf("ParseRule(%q) error = %q: want the accepted forms listed", tt.in, msg)
			}
		})
	}
}

func TestParseRuleErrorClipsHugeInput(t *testing.T) {
	in := strings.Repeat("x", 10000) + "*"
	_, err := ParseRule(in)
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("ParseRule(10000 bytes) error has %d bytes, want an error under 1000", len(err.Error()))
	}
}

func TestParseRules(t *testing.T) {
	rs, err := ParseRules([]string{"api.anthropic.com", "10.0.0.0/8"}, []string{"0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{
		Allow: []Rule{mustRule(t, "api.anthropic.com"), mustRule(t, "10.0.0.0/8")},
		Deny:  []Rule{mustRule(t, "0.0.0.0/0")},
	}
	if diff := cmp.Diff(want, rs, cmp.Comparer(func(a, b Rule) bool { return a == b })); diff != "" {
		t.Errorf("ParseRules mismatch (-want +got):\n%s", diff)
	}
	if rs.Empty() {
		t.Errorf("Rules.Empty() = true for %v", rs)
	}
	if empty, err := ParseRules(nil, []string{}); err != nil || !empty.Empty() {
		t.Errorf("ParseRules(nil, []) = %v, %v; want empty rules", empty, err)
	}

	errTests := []struct {
		name        string
		allow, deny []string
		want        string
	}{
		{"bad allow", []string{"ok.example.com", "*.com"}, nil, `allowOut[1]: rule "*.com"`},
		{"bad deny", nil, []string{"bad host"}, `denyOut[0]: rule "bad host"`},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules(tt.allow, tt.deny)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRules(%q, %q) error = %v, want it to contain %q", tt.allow, tt.deny, err, tt.want)
			}
			if !errors.Is(err, ErrInvalidRule) {
				t.Errorf("ParseRules error %v is not ErrInvalidRule", err)
			}
		})
	}
}

func TestRuleText(t *testing.T) {
	var got struct{ Rules []Rule }
	if err := json.Unmarshal([]byte(`{"Rules":["*.Example.com","10.1.0.0/16"]}`), &got); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Rules":["*.example.com","10.1.0.0/16"]}`; string(out) != want {
		t.Errorf("json round trip = %s, want %s", out, want)
	}
	if err := json.Unmarshal([]byte(`{"Rules":["*.com"]}`), &got); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("json.Unmarshal of *.com error = %v, want ErrInvalidRule", err)
	}
}

func mustRule(tb testing.TB, s string) Rule {
	tb.Helper()
	r, err := ParseRule(s)
	if err != nil {
		tb.Fatalf("ParseRule(%q): %v", s, err)
	}
	return r
}

func mustRules(tb testing.TB, allow, deny []string) Rules {
	tb.Helper()
	rs, err := ParseRules(allow, deny)
	if err != nil {
		tb.Fatalf("ParseRules(%q, %q): %v", allow, deny, err)
	}
	return rs
}

func dest(host, addr string) Dest {
	d := Dest{Host: host}
	if addr != "" {
		d.Addr = netip.MustParseAddr(addr)
	}
	return d
}

func TestDecide(t *testing.T) {
	var (
		announce = []string{"api.anthropic.com"}
		denyAll4 = []string{"0.0.0.0/0"}
	)
	allowRule := func(rule string) Decision { return Decision{Allow: true, Reason: ReasonAllowRule, Rule: rule} }
	denyRule := func(rule string) Decision { return Decision{Allow: false, Reason: ReasonDenyRule, Rule: rule} }
	allowSpecial := func(rule string) Decision { return Decision{Allow: true, Reason: ReasonAllowSpecial, Rule: rule} }
	special := Decision{Allow: false, Reason: ReasonSpecialAddr}
	dflt := Decision{Allow: true, Reason: ReasonDefault}

	tests := []struct {
		name        string
		allow, deny []string
		d           Dest
		want        Decision
	}{
		// The announcement case (DESIGN.md decision 9).
		{"announce: allowed host", announce, denyAll4, dest("api.anthropic.com", "1.2.3.4"), allowRule("api.anthropic.com")},
		{"announce: other host", announce, denyAll4, dest("evil.com", "5.6.7.8"), denyRule("0.0.0.0/0")},
		{"announce: no host", announce, denyAll4, dest("", "1.2.3.4"), denyRule("0.0.0.0/0")},
		{"announce: public ipv6 not covered by 0.0.0.0/0", announce, denyAll4, dest("evil.com", "2606:4700::1111"), dflt},
		{"announce: ::/0 denied separately", announce, []string{"0.0.0.0/0", "::/0"}, dest("evil.com", "2606:4700::1111"), denyRule("::/0")},
		{"announce: mapped ipv4 covered by 0.0.0.0/0", announce, denyAll4, dest("evil.com", "::ffff:5.6.7.8"), denyRule("0.0.0.0/0")},
		{"announce: allowed host case and dot", announce, denyAll4, dest("API.Anthropic.COM.", "1.2.3.4"), allowRule("api.anthropic.com")},
		{"announce: allowed host rebinding to loopback", announce, denyAll4, dest("api.anthropic.com", "127.0.0.1"), special},
		{"announce: allowed host rebinding to metadata", announce, denyAll4, dest("api.anthropic.com", "169.254.169.254"), special},

		{"no rules: public", nil, nil, dest("example.com", "93.184.215.14"), dflt},
		{"no rules: host only", nil, nil, dest("example.com", ""), dflt},
		{"no rules: loopback", nil, nil, dest("localhost", "127.0.0.1"), special},
		{"no rules: private", nil, nil, dest("", "10.1.2.3"), special},
		{"no rules: ipv6 ula", nil, nil, dest("", "fd12::1"), special},
		{"no rules: ipv6 loopback", nil, nil, dest("", "::1"), special},
		{"no rules: zoned link-local", nil, nil, Dest{Addr: netip.MustParseAddr("fe80::1%eth0")}, special},
		{"no rules: ip literal host", nil, nil, dest("127.0.0.1", ""), special},
		{"no rules: bracketed ipv6 literal host", nil, nil, dest("[::1]", ""), special},

		{"allow beats deny: same host", []string{"api.example.com"}, []string{"api.example.com"}, dest("api.example.com", "1.2.3.4"), allowRule("api.example.com")},
		{"allow beats deny: wildcard vs exact", []string{"*.example.com"}, []string{"api.example.com"}, dest("api.example.com", "1.2.3.4"), allowRule("*.example.com")},
		{"allow beats deny: cidr vs host", []string{"1.2.3.0/24"}, []string{"evil.com"}, dest("evil.com", "1.2.3.4"), allowRule("1.2.3.0/24")},
		{"first allow rule reported", []string{"1.2.3.0/24", "evil.com"}, nil, dest("evil.com", "1.2.3.4"), allowRule("1.2.3.0/24")},

		{"deny exact", nil, []string{"evil.com"}, dest("evil.com", "5.6.7.8"), denyRule("evil.com")},
		{"deny exact not subdomain", nil, []string{"evil.com"}, dest("a.evil.com", "5.6.7.8"), dflt},
		{"deny wildcard subdomain", nil, []string{"*.evil.com"}, dest("a.b.evil.com", "5.6.7.8"), denyRule("*.evil.com")},
		{"deny wildcard not apex", nil, []string{"*.evil.com"}, dest("evil.com", "5.6.7.8"), dflt},
		{"deny wildcard not suffix lookalike", nil, []string{"*.evil.com"}, dest("notevil.com", "5.6.7.8"), dflt},
		{"allow wildcard", []string{"*.example.com"}, denyAll4, dest("x.example.com", "1.2.3.4"), allowRule("*.example.com")},
		{"allow wildcard not apex", []string{"*.example.com"}, denyAll4, dest("example.com", "1.2.3.4"), denyRule("0.0.0.0/0")},

		{"deny cidr v4", nil, []string{"5.6.0.0/16"}, dest("", "5.6.7.8"), denyRule("5.6.0.0/16")},
		{"deny cidr v4 outside", nil, []string{"5.6.0.0/16"}, dest("", "5.7.7.8"), dflt},
		{"deny cidr v6", nil, []string{"2606:4700::/32"}, dest("", "2606:4700::1111"), denyRule("2606:4700::/32")},
		{"deny v4 cidr does not match v6", nil, []string{"0.0.0.0/0"}, dest("", "2606:4700::1111"), dflt},
		{"deny v6 cidr does not match v4", nil, []string{"::/0"}, dest("", "1.2.3.4"), dflt},
		{"deny bare ip", nil, []string{"5.6.7.8"}, dest("", "5.6.7.8"), denyRule("5.6.7.8")},
		{"cidr rule needs an address", nil, []string{"10.0.0.0/8"}, dest("evil.com", ""), dflt},
		{"domain rule needs a host", nil, []string{"evil.com"}, dest("", "5.6.7.8"), dflt},
		{"ip literal host meets cidr", nil, []string{"5.6.0.0/16"}, dest("5.6.7.8", ""), denyRule("5.6.0.0/16")},

		{"special: allow cidr unlocks", []string{"10.0.0.0/8"}, nil, dest("", "10.1.2.3"), allowSpecial("10.0.0.0/8")},
		{"special: allow cidr unlocks over deny", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}, dest("", "10.1.2.3"), allowSpecial("10.0.0.0/8")},
		{"special: allow cidr elsewhere", []string{"192.168.0.0/16"}, nil, dest("", "10.1.2.3"), special},
		{"special: allow domain does not unlock", []string{"internal.example.com"}, nil, dest("internal.example.com", "10.1.2.3"), special},
		{"special: allow wildcard does not unlock", []string{"*.example.com"}, nil, dest("db.example.com", "192.168.1.1"), special},
		{"special: metadata with allow bare ip", []string{"169.254.169.254"}, nil, dest("", "169.254.169.254"), allowSpecial("169.254.169.254")},
		{"special: loopback allow v6", []string{"::1"}, nil, dest("", "::1"), allowSpecial("::1")},
		{"special: deny rule is not the reason", nil, []string{"10.0.0.0/8"}, dest("", "10.1.2.3"), special},
		{"special: cgnat", nil, nil, dest("", "100.64.0.1"), special},
		{"special: multicast", nil, nil, dest("", "224.0.0.1"), special},
		{"special: broadcast", nil, nil, dest("", "255.255.255.255"), special},
		{"special: unspecified", nil, nil, dest("", "0.0.0.0"), special},

		{"mapped bypass: loopback", nil, nil, dest("", "::ffff:127.0.0.1"), special},
		{"mapped bypass: metadata", []string{"api.anthropic.com"}, nil, dest("api.anthropic.com", "::ffff:169.254.169.254"), special},
		{"mapped bypass: metadata allow v4 cidr", []string{"169.254.0.0/16"}, nil, dest("", "::ffff:169.254.169.254"), allowSpecial("169.254.0.0/16")},
		{"mapped allow rule written mapped", []string{"::ffff:127.0.0.1"}, nil, dest("", "127.0.0.1"), allowSpecial("127.0.0.1")},
		{"nat64 bypass: 10.0.0.1", nil, nil, dest("", "64:ff9b::a00:1"), special},
		{"nat64 bypass: metadata", nil, nil, dest("", "64:ff9b::a9fe:a9fe"), special},
		{"nat64 of public address", nil, nil, dest("", "64:ff9b::102:304"), dflt},
		{"nat64 allowed by a narrow v6 cidr", []string{"64:ff9b::a00:0/104"}, nil, dest("", "64:ff9b::a00:1"), allowSpecial("64:ff9b::a00:0/104")},
		{"nat64 not unlocked by the whole nat64 prefix", []string{"64:ff9b::/96"}, nil, dest("", "64:ff9b::a00:1"), Decision{Reason: ReasonSpecialAddr}},
		{"name alone refused by a /0 deny", nil, []string{"0.0.0.0/0"}, dest("evil.com", ""), Decision{Reason: ReasonDenyRule, Rule: "0.0.0.0/0"}},
		{"name alone refused by ::/0 deny", nil, []string{"::/0"}, dest("evil.com", ""), Decision{Reason: ReasonDenyRule, Rule: "::/0"}},
		{"name alone allowed by name despite /0 deny", []string{"api.anthropic.com"}, []string{"0.0.0.0/0"}, dest("api.anthropic.com", ""), Decision{Allow: true, Reason: ReasonAllowRule, Rule: "api.anthropic.com"}},
		{"name alone not refused by a narrow deny", nil, []string{"10.0.0.0/8"}, dest("evil.com", ""), Decision{Allow: true, Reason: ReasonDefault}},
		{"0.0.0.0/0 does not unlock metadata", []string{"0.0.0.0/0"}, nil, dest("", "169.254.169.254"), Decision{Reason: ReasonSpecialAddr}},
		{"0.0.0.0/0 does not unlock private", []string{"0.0.0.0/0"}, nil, dest("", "10.0.0.1"), Decision{Reason: ReasonSpecialAddr}},
		{"10.0.0.0/7 spans public space: no unlock", []string{"10.0.0.0/7"}, nil, dest("", "10.0.0.1"), Decision{Reason: ReasonSpecialAddr}},
		{"::/0 does not unlock loopback", []string{"::/0"}, nil, dest("", "::1"), Decision{Reason: ReasonSpecialAddr}},
		{"metadata /32 unlocks it", []string{"169.254.169.254/32"}, nil, dest("", "169.254.169.254"), allowSpecial("169.254.169.254")},
		{"0.0.0.0/0 still allows public", []string{"0.0.0.0/0"}, nil, dest("", "1.2.3.4"), Decision{Allow: true, Reason: ReasonAllowRule, Rule: "0.0.0.0/0"}},
		{"6to4 bypass: loopback", nil, nil, dest("", "2002:7f00:1::1"), special},
		{"ipv4-compatible bypass", nil, nil, dest("", "::7f00:1"), special},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustRules(t, tt.allow, tt.deny)
			if got := rs.Decide(tt.d); got != tt.want {
				t.Errorf("Decide(%q, %v) with allow %q deny %q = %+v, want %+v", tt.d.Host, tt.d.Addr, tt.allow, tt.deny, got, tt.want)
			}
		})
	}
}

func TestMatchHost(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.EXAMPLE.COM", true},
		{"API.example.com", "api.example.com.", true},
		{"api.example.com.", "api.example.com", true},
		{"api.example.com", "x.api.example.com", false},
		{"api.example.com", "example.com", false},
		{"api.example.com", "", false},
		{"", "", false},
		{"*.example.com", "x.example.com", true},
		{"*.example.com", "y.x.example.com", true},
		{"*.example.com", "X.Example.Com.", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "x..example.com", false},
		{"*.example.com", "xexample.com", false},
		{"*.example.com", "x.example.com.evil.com", false},
		{"*.example.com", "*.example.com", true},
		{"*", "x", false},
		{"*", "*", false},
		{"*.*.example.com", "a.b.example.com", false},
		{"api.ok.com", "api.o\u212a.com", false}, // KELVIN SIGN folds to k under Unicode rules
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.host, func(t *testing.T) {
			if got := MatchHost(tt.pattern, tt.host); got != tt.want {
				t.Errorf("MatchHost(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestRulesEmpty(t *testing.T) {
	tests := []struct {
		name string
		rs   Rules
		want bool
	}{
		{"zero", Rules{}, true},
		{"empty slices", Rules{Allow: []Rule{}, Deny: []Rule{}}, true},
		{"allow only", Rules{Allow: []Rule{{}}}, false},
		{"deny only", Rules{Deny: []Rule{{}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rs.Empty(); got != tt.want {
				t.Errorf("Empty(%v) = %v, want %v", tt.rs, got, tt.want)
			}
		})
	}
}

func TestZeroRuleMatchesNothing(t *testing.T) {
	rs := Rules{Deny: []Rule{{}}}
	if got, want := rs.Decide(dest("", "1.2.3.4")), (Decision{Allow: true, Reason: ReasonDefault}); got != want {
		t.Errorf("Decide with a zero deny Rule = %+v, want %+v", got, want)
	}
}
