package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/internal/policy"
	"github.com/standin/standin/internal/testutil"
)

// These tests never use the real resolver and never connect outside
// 127.0.0.0/8: every Dialer gets a fake resolver, and its dialFunc is
// loopbackOnly, which refuses any other address before a socket exists,
// even if Dial's own checks were deleted.

// dialResolver answers from a func; it never touches real DNS.
type dialResolver struct {
	lookup func(host string) ([]netip.Addr, error)
}

func (r dialResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" {
		return nil, fmt.Errorf("unexpected network %q", network)
	}
	return r.lookup(host)
}

// staticResolver answers host with addrs and fails every other name.
func staticResolver(tb testing.TB, host string, addrs ...string) dialResolver {
	tb.Helper()
	var as []netip.Addr
	for _, s := range addrs {
		as = append(as, netip.MustParseAddr(s))
	}
	return dialResolver{lookup: func(h string) ([]netip.Addr, error) {
		if h != host {
			return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
		}
		return as, nil
	}}
}

// noResolver fails the test if a lookup happens.
func noResolver(tb testing.TB) dialResolver {
	return dialResolver{lookup: func(h string) ([]netip.Addr, error) {
		tb.Errorf("unexpected lookup of %q", h)
		return nil, errors.New("unexpected lookup")
	}}
}

// dialLog records every address a Dialer tried.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (l *dialLog) tried() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.addrs)
}

// loopbackOnly is a dialFunc that records the address and refuses anything
// outside 127.0.0.0/8 without creating a socket.
func (l *dialLog) loopbackOnly(tb testing.TB) func(ctx context.Context, network, address string) (net.Conn, error) {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		l.mu.Lock()
		l.addrs = append(l.addrs, address)
		l.mu.Unlock()
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !loop.Contains(ap.Addr()) {
			tb.Errorf("dial of %q: outside 127.0.0.0/8", address)
			return nil, errors.New("test refuses to dial outside loopback")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}

// listen starts a TCP listener on 127.0.0.1 that accepts and closes
// connections, and returns its port.
func listen(tb testing.TB) string {
	tb.Helper()
	ln := testutil.ServeTCP(tb, func(net.Conn) {})
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}

func mustRules(tb testing.TB, allow, deny []string) policy.Rules {
	tb.Helper()
	rs, err := policy.ParseRules(allow, deny)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

var loopGuard = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func TestDialRefused(t *testing.T) {
	tests := []struct {
		name       string
		host       string
		answers    []string // what the fake resolver returns for host
		guard      []netip.Prefix
		overrides  map[string][]netip.AddrPort
		allow      []string
		deny       []string
		wantReason string
		wantAddr   string // "" for the zero Addr
	}{
		{name: "private", host: "api.example.com", answers: []string{"10.0.0.1"},
			guard: loopGuard, wantReason: ReasonSpecial, wantAddr: "10.0.0.1"},
		{name: "private even if allowed by CIDR", host: "api.example.com", answers: []string{"10.0.0.1"},
			guard: loopGuard, allow: []string{"10.0.0.0/8"}, wantReason: ReasonGuard, wantAddr: "10.0.0.1"},
		{name: "metadata", host: "api.example.com", answers: []string{"169.254.169.254"},
			guard: loopGuard, allow: []string{"api.example.com"}, wantReason: ReasonSpecial, wantAddr: "169.254.169.254"},
		{name: "public", host: "api.example.com", answers: []string{"8.8.8.8"},
			guard: loopGuard, wantReason: ReasonGuard, wantAddr: "8.8.8.8"},
		{name: "IPv6 loopback", host: "api.example.com", answers: []string{"::1"},
			guard: loopGuard, allow: []string{"::1/128"}, wantReason: ReasonGuard, wantAddr: "::1"},
		{name: "4in6 private", host: "api.example.com", answers: []string{"::ffff:10.0.0.1"},
			guard: loopGuard, wantReason: ReasonSpecial, wantAddr: "10.0.0.1"},
		{name: "4in6 loopback outside a narrow guard", host: "api.example.com", answers: []string{"::ffff:127.0.0.1"},
			guard: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, allow: []string{"127.0.0.0/8"},
			wantReason: ReasonGuard, wantAddr: "127.0.0.1"},
		{name: "IP literal outside guard", host: "10.1.2.3", guard: loopGuard,
			wantReason: ReasonSpecial, wantAddr: "10.1.2.3"},
		{name: "bracketed IPv6 literal", host: "[fd00:ec2::254]", guard: loopGuard,
			wantReason: ReasonSpecial, wantAddr: "fd00:ec2::254"},
		{name: "rebinding to loopback inside guard", host: "api.example.com", answers: []string{"127.0.0.1"},
			guard: loopGuard, allow: []string{"api.example.com"}, wantReason: ReasonSpecial, wantAddr: "127.0.0.1"},
		{name: "rebinding with 4in6 answer", host: "api.example.com", answers: []string{"::ffff:127.0.0.1"},
			guard: loopGuard, wantReason: ReasonSpecial, wantAddr: "127.0.0.1"},
		{name: "loopback literal without allow CIDR", host: "127.0.0.1", guard: loopGuard,
			wantReason: ReasonSpecial, wantAddr: "127.0.0.1"},
		{name: "allow CIDR for another loopback address", host: "api.example.com", answers: []string{"127.0.0.5"},
			guard: loopGuard, allow: []string{"127.0.0.1/32"}, wantReason: ReasonSpecial, wantAddr: "127.0.0.5"},
		{name: "first refusal is reported", host: "api.example.com", answers: []string{"10.0.0.1", "127.0.0.1"},
			guard: loopGuard, wantReason: ReasonSpecial, wantAddr: "10.0.0.1"},
		{name: "zero address", host: "api.example.com", answers: []string{""},
			guard: loopGuard, wantReason: ReasonSpecial},
		{name: "no answers", host: "api.example.com", answers: []string{},
			guard: loopGuard, wantReason: ReasonNoAddr},
		{name: "empty host", host: "[]", guard: loopGuard, wantReason: ReasonNoAddr},
		{name: "override outside guard", host: "api.example.com",
			overrides: map[string][]netip.AddrPort{"api.example.com": {netip.MustParseAddrPort("10.0.0.1:443")}},
			guard:     loopGuard, wantReason: ReasonGuard, wantAddr: "10.0.0.1"},
		{name: "override host denied by name", host: "API.example.com",
			overrides: map[string][]netip.AddrPort{"api.example.com": {netip.MustParseAddrPort("127.0.0.1:443")}},
			guard:     loopGuard, deny: []string{"api.example.com"}, wantReason: ReasonDenied},
		// Without a Guard (production) the rules alone decide; the
		// test's loopbackOnly dialFunc still stops any real dial.
		{name: "no guard: private", host: "api.example.com", answers: []string{"10.0.0.1"},
			allow: []string{"api.example.com"}, wantReason: ReasonSpecial, wantAddr: "10.0.0.1"},
		{name: "no guard: metadata", host: "169.254.169.254",
			allow: []string{"10.0.0.0/8"}, wantReason: ReasonSpecial, wantAddr: "169.254.169.254"},
		{name: "no guard: 4in6 metadata", host: "api.example.com", answers: []string{"::ffff:169.254.169.254"},
			wantReason: ReasonSpecial, wantAddr: "169.254.169.254"},
		{name: "no guard: NAT64 of private", host: "api.example.com", answers: []string{"64:ff9b::a00:1"},
			wantReason: ReasonSpecial, wantAddr: "64:ff9b::a00:1"},
		{name: "no guard: deny CIDR", host: "evil.example", answers: []string{"8.8.8.8"},
			allow: []string{"api.example.com"}, deny: []string{"0.0.0.0/0"}, wantReason: ReasonDenied, wantAddr: "8.8.8.8"},
		{name: "no guard: deny name", host: "x.evil.example", answers: []string{"2001:4860:4860::8888"},
			deny: []string{"*.evil.example"}, wantReason: ReasonDenied, wantAddr: "2001:4860:4860::8888"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res dialResolver
			if tt.answers == nil {
				res = noResolver(t)
			} else {
				var as []netip.Addr
				for _, s := range tt.answers {
					var a netip.Addr
					if s != "" {
						a = netip.MustParseAddr(s)
					}
					as = append(as, a)
				}
				res = dialResolver{lookup: func(string) ([]netip.Addr, error) { return as, nil }}
			}
			var log dialLog
			d := &Dialer{Resolver: res, Guard: tt.guard, Overrides: tt.overrides, dialFunc: log.loopbackOnly(t)}

			c, err := d.Dial(t.Context(), tt.host, "443", mustRules(t, tt.allow, tt.deny))
			if err == nil {
				c.Close()
				t.Fatalf("Dial(%q) connected to %v, want refusal %q", tt.host, c.RemoteAddr(), tt.wantReason)
			}
			var de *DialError
			if !errors.As(err, &de) {
				t.Fatalf("Dial(%q) = %v, want a *DialError", tt.host, err)
			}
			var wantAddr netip.Addr
			if tt.wantAddr != "" {
				wantAddr = netip.MustParseAddr(tt.wantAddr)
			}
			if de.Reason != tt.wantReason || de.Addr != wantAddr {
				t.Errorf("Dial(%q) refused %v with %q, want %v with %q", tt.host, de.Addr, de.Reason, wantAddr, tt.wantReason)
			}
			if got := log.tried(); len(got) != 0 {
				t.Errorf("Dial(%q) tried %v, want no dial", tt.host, got)
			}
		})
	}
}

func TestDialConnects(t *testing.T) {
	port := listen(t)
	dead := closedPort(t)
	tests := []struct {
		name      string
		host      string
		port      string
		answers   []string
		overrides map[string][]netip.AddrPort
		allow     []string
		deny      []string
		wantTried []string
	}{
		{name: "loopback allowed by CIDR", host: "api.example.com", port: port, answers: []string{"127.0.0.1"},
			allow: []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "allow CIDR wins over deny", host: "api.example.com", port: port, answers: []string{"127.0.0.1"},
			allow: []string{"127.0.0.1"}, deny: []string{"0.0.0.0/0", "api.example.com"},
			wantTried: []string{"127.0.0.1:" + port}},
		{name: "4in6 answer is unmapped", host: "api.example.com", port: port, answers: []string{"::ffff:127.0.0.1"},
			allow: []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "IP literal", host: "127.0.0.1", port: port,
			allow: []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "bracketed 4in6 literal", host: "[::ffff:127.0.0.1]", port: port,
			allow: []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "mixed answers use the allowed one", host: "api.example.com", port: port,
			answers: []string{"10.0.0.1", "169.254.169.254", "::1", "127.0.0.1"},
			allow:   []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "refused by rules then allowed", host: "api.example.com", port: port,
			answers: []string{"127.0.0.9", "127.0.0.1"},
			allow:   []string{"127.0.0.1"}, wantTried: []string{"127.0.0.1:" + port}},
		{name: "falls over to the next address", host: "api.example.com", port: port,
			answers: []string{"127.0.0.2", "127.0.0.1"},
			allow:   []string{"127.0.0.0/8"}, wantTried: []string{"127.0.0.2:" + port, "127.0.0.1:" + port}},
		{name: "override", host: "API.Example.com.", port: "443",
			overrides: map[string][]netip.AddrPort{"api.example.com": {netip.MustParseAddrPort("127.0.0.1:" + port)}},
			wantTried: []string{"127.0.0.1:" + port}},
		{name: "override with dead first target", host: "api.example.com", port: "443",
			overrides: map[string][]netip.AddrPort{"api.example.com": {
				netip.MustParseAddrPort("10.0.0.1:443"),
				netip.MustParseAddrPort("127.0.0.1:" + dead),
				netip.MustParseAddrPort("127.0.0.1:" + port)}},
			allow: []string{"api.example.com"}, deny: []string{"0.0.0.0/0"},
			wantTried: []string{"127.0.0.1:" + dead, "127.0.0.1:" + port}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := noResolver(t)
			if tt.answers != nil {
				res = staticResolver(t, tt.host, tt.answers...)
			}
			var log dialLog
			d := &Dialer{Resolver: res, Guard: loopGuard, Overrides: tt.overrides, dialFunc: log.loopbackOnly(t)}
			c, err := d.Dial(t.Context(), tt.host, tt.port, mustRules(t, tt.allow, tt.deny))
			if err != nil {
				t.Fatalf("Dial(%q) = %v, want a connection", tt.host, err)
			}
			c.Close()
			last := tt.wantTried[len(tt.wantTried)-1]
			if got := c.RemoteAddr().String(); got != last {
				t.Errorf("Dial(%q) connected to %s, want %s", tt.host, got, last)
			}
			if diff := cmp.Diff(tt.wantTried, log.tried()); diff != "" {
				t.Errorf("Dial(%q) tried addresses (-want +got):\n%s", tt.host, diff)
			}
		})
	}
}

// TestDialDefaultDialer covers the production dial path (no dialFunc);
// the Guard keeps it on loopback.
func TestDialDefaultDialer(t *testing.T) {
	port := listen(t)
	d := &Dialer{Resolver: staticResolver(t, "api.example.com", "127.0.0.1"), Guard: loopGuard}
	c, err := d.Dial(t.Context(), "api.example.com", port, mustRules(t, []string{"127.0.0.1"}, nil))
	if err != nil {
		t.Fatalf("Dial = %v, want a connection", err)
	}
	c.Close()
}

func TestDialFailures(t *testing.T) {
	dead := closedPort(t)
	var log dialLog // shared by the subtests that must not dial
	rules := mustRules(t, []string{"127.0.0.0/8"}, nil)

	t.Run("nothing listens", func(t *testing.T) {
		var one dialLog
		d := &Dialer{Resolver: staticResolver(t, "api.example.com", "127.0.0.1"), Guard: loopGuard,
			dialFunc: one.loopbackOnly(t)}
		_, err := d.Dial(t.Context(), "api.example.com", dead, rules)
		var de *DialError
		if err == nil || errors.As(err, &de) {
			t.Fatalf("Dial = %v, want a connection error", err)
		}
		if !strings.HasPrefix(err.Error(), "dial api.example.com: ") {
			t.Errorf("Dial error = %q, want it to start with the host", err)
		}
	})
	t.Run("name does not resolve", func(t *testing.T) {
		d := &Dialer{Resolver: staticResolver(t, "other.example"), Guard: loopGuard, dialFunc: log.loopbackOnly(t)}
		_, err := d.Dial(t.Context(), "api.example.com", "443", rules)
		var de *DialError
		if !errors.As(err, &de) || de.Reason != ReasonNoAddr {
			t.Fatalf("Dial = %v, want %q", err, ReasonNoAddr)
		}
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) {
			t.Errorf("Dial = %v, want it to wrap the resolver's *net.DNSError", err)
		}
		if got, want := err.Error(), "dial api.example.com: "+ReasonNoAddr; got != want {
			t.Errorf("Dial error = %q, want %q", got, want)
		}
	})
	t.Run("bad port", func(t *testing.T) {
		for _, port := range []string{"", "0", "65536", "-1", "https", "1e3"} {
			d := &Dialer{Resolver: noResolver(t), Guard: loopGuard, dialFunc: log.loopbackOnly(t)}
			if _, err := d.Dial(t.Context(), "127.0.0.1", port, rules); err == nil {
				t.Errorf("Dial(port %q) = nil error, want one", port)
			}
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var one dialLog
		d := &Dialer{Resolver: staticResolver(t, "api.example.com", "127.0.0.2", "127.0.0.1"), Guard: loopGuard,
			dialFunc: one.loopbackOnly(t)}
		_, err := d.Dial(ctx, "api.example.com", dead, rules)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial = %v, want context.Canceled", err)
		}
		if got := one.tried(); len(got) > 1 {
			t.Errorf("Dial tried %v, want it to stop after the first address", got)
		}
	})
	if got := log.tried(); len(got) != 0 {
		t.Errorf("dialed %v, want nothing", got)
	}
}

func TestParseGuard(t *testing.T) {
	tests := []struct {
		in      []string
		want    []netip.Prefix
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"127.0.0.0/8"}, want: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{in: []string{" 10.1.2.3/8 ", "::1", "192.0.2.7"}, want: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.0.2.7/32")}},
		{in: []string{"::ffff:127.0.0.0/104"}, want: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{in: []string{"127.0.0.0/8", "localhost"}, wantErr: `guard[1]: "localhost" is not a CIDR`},
		{in: []string{"127.0.0.0/33"}, wantErr: `guard[0]: "127.0.0.0/33" is not a CIDR`},
		{in: []string{"fe80::1%eth0"}, wantErr: `guard[0]: "fe80::1%eth0" is not a CIDR`},
		{in: []string{""}, wantErr: `guard[0]: "" is not a CIDR`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := ParseGuard(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseGuard(%q) = %v, %v, want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseGuard(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseGuard(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseOverrides(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    map[string][]netip.AddrPort
		wantErr string
	}{
		{name: "empty"},
		{name: "one", in: map[string]string{"API.Example.com.": "127.0.0.1:9443"},
			want: map[string][]netip.AddrPort{"api.example.com": {netip.MustParseAddrPort("127.0.0.1:9443")}}},
		{name: "list", in: map[string]string{"llm.internal": "127.0.0.1:1, [::1]:2 ,[::ffff:127.0.0.3]:3"},
			want: map[string][]netip.AddrPort{"llm.internal": {
				netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:2"), netip.MustParseAddrPort("127.0.0.3:3")}}},
		{name: "no port", in: map[string]string{"a.example": "127.0.0.1"}, wantErr: `override "a.example"`},
		{name: "port zero", in: map[string]string{"a.example": "127.0.0.1:0"}, wantErr: `"127.0.0.1:0" is not an address with port`},
		{name: "name target", in: map[string]string{"a.example": "localhost:80"}, wantErr: `"localhost:80"`},
		{name: "empty entry", in: map[string]string{"a.example": "127.0.0.1:80,"}, wantErr: `override "a.example"`},
		{name: "zone", in: map[string]string{"a.example": "[fe80::1%eth0]:80"}, wantErr: `override "a.example"`},
		{name: "IP key", in: map[string]string{"10.0.0.1": "127.0.0.1:80"}, wantErr: `override "10.0.0.1": invalid upstream override: want a host name, not an IP address`},
		{name: "empty key", in: map[string]string{"": "127.0.0.1:80"}, wantErr: `override ""`},
		{name: "empty label", in: map[string]string{"a..example": "127.0.0.1:80"}, wantErr: `override "a..example"`},
		{name: "dots only", in: map[string]string{"..": "127.0.0.1:80"}, wantErr: `override ".."`},
		{name: "key with port", in: map[string]string{"a.example:443": "127.0.0.1:80"}, wantErr: `override "a.example:443"`},
		{name: "duplicate", in: map[string]string{"A.example": "127.0.0.1:80", "a.example": "127.0.0.1:81"},
			wantErr: `override "a.example": invalid upstream override: host listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOverrides(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrOverride) {
					t.Fatalf("ParseOverrides(%q) = %v, %v, want ErrOverride containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOverrides(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("ParseOverrides(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func FuzzParseGuard(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "::1", "::ffff:10.0.0.0/104,10.0.0.0/8", "1.2.3.4/0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseGuard(strings.Split(s, ","))
		if err != nil {
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("ParseGuard(%q) gave %v: want a valid, masked, unmapped prefix", s, p)
			}
			again, err := ParseGuard([]string{p.String()})
			if err != nil || len(again) != 1 || again[0] != p {
				t.Fatalf("ParseGuard(%q) = %v, %v: does not round-trip", p.String(), again, err)
			}
		}
	})
}

func FuzzParseOverrides(f *testing.F) {
	f.Add("api.example.com", "127.0.0.1:9443")
	f.Add("A.b.", "[::1]:1,[::ffff:1.2.3.4]:5")
	f.Add("1.2.3.4", "1.2.3.4:5")
	f.Fuzz(func(t *testing.T, key, val string) {
		m, err := ParseOverrides(map[string]string{key: val})
		if err != nil {
			if !errors.Is(err, ErrOverride) {
				t.Fatalf("ParseOverrides error %v does not match ErrOverride", err)
			}
			return
		}
		for k, aps := range m {
			if k != normalizeName(k) || !validName(k) {
				t.Fatalf("ParseOverrides(%q) key %q is not normalized", key, k)
			}
			if len(aps) == 0 {
				t.Fatalf("ParseOverrides(%q, %q) gave no targets", key, val)
			}
			for _, ap := range aps {
				if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Is4In6() || ap.Addr().Zone() != "" {
					t.Fatalf("ParseOverrides(%q, %q) gave target %v", key, val, ap)
				}
			}
		}
	})
}
