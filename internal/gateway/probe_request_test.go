package gateway

// Probe tests: a second, fresh-eyes red team of the request path (slots,
// hosts, request targets, trailers, upgrades, pools, snapshot caches).
// Like attack_test.go, each test attacks as code in a sandbox would and
// asserts the exact safe outcome; everything stays on loopback, under the
// 127.0.0.0/8 dial guard, with the rig's fake resolver.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
)

// rqHit is one request as an upstream's Go server understood it.
type rqHit struct {
	Host, RequestURI, RemoteAddr string
	Header, Trailer              http.Header
	Body                         string
}

// rqUpstream is a fake provider that records every request, HTTP/2
// or HTTP/1.1 only (many real APIs do not speak HTTP/2).
type rqUpstream struct {
	srv   *httptest.Server
	roots *x509.CertPool
	addr  netip.AddrPort
	mu    sync.Mutex
	hits  []rqHit
	h     http.HandlerFunc
}

func newRQUpstream(tb testing.TB, h2 bool, names ...string) *rqUpstream {
	tb.Helper()
	u := &rqUpstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		h := u.h
		u.mu.Unlock()
		if h != nil && r.Header.Get("Upgrade") != "" {
			h(w, r) // hijacks
			return
		}
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.hits = append(u.hits, rqHit{Host: r.Host, RequestURI: r.RequestURI, RemoteAddr: r.RemoteAddr,
			Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: string(body)})
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"host": r.Host})
	}))
	u.srv.EnableHTTP2 = h2
	ca, cert := testutil.UpstreamCert(tb, append([]string{"upstream.test"}, names...), net.IPv4(127, 0, 0, 1))
	u.roots = x509.NewCertPool()
	u.roots.AddCert(ca)
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	u.srv.StartTLS()
	tb.Cleanup(u.srv.Close)
	u.addr = netip.MustParseAddrPort(u.srv.Listener.Addr().String())
	return u
}

func (u *rqUpstream) requests() []rqHit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]rqHit(nil), u.hits...)
}

func (u *rqUpstream) handle(h http.HandlerFunc) {
	u.mu.Lock()
	u.h = h
	u.mu.Unlock()
}

// rqGateway starts a second gateway over r's store, vault, minter and
// CA whose hosts route to up; edit may change its config. The API
// invalidates only r.gw: a test that writes through the API calls
// Invalidate on this one itself.
func rqGateway(tb testing.TB, r *rig, up *rqUpstream, hosts []string, edit func(*Config)) (*Gateway, string) {
	tb.Helper()
	ovr := map[string][]netip.AddrPort{}
	for _, h := range hosts {
		ovr[h] = []netip.AddrPort{up.addr}
	}
	cfg := r.cfg
	cfg.Dialer = &Dialer{Overrides: ovr, Guard: guard127, Resolver: r.resolver}
	cfg.UpstreamRoots = up.roots
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return serveProxy(tb, ctx, cfg)
}

// rqTLS opens CONNECT host:443 on proxy as sandbox and TLS inside it
// (standin's CA trusted, ALPN protos).
func rqTLS(tb testing.TB, r *rig, proxy, sandbox, host string, protos ...string) *tls.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(rawDeadline))
	io.WriteString(c, "CONNECT "+host+":443 HTTP/1.1\r\nHost: "+host+":443\r\nProxy-Authorization: "+proxyAuth(tb, r, sandbox)+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("CONNECT %s: %v %v", host, resp, err)
	}
	if len(protos) == 0 {
		protos = []string{"http/1.1"}
	}
	tc := tls.Client(&prefixConn{Conn: c, r: br}, &tls.Config{ServerName: host, RootCAs: r.caPool, NextProtos: protos})
	if err := tc.Handshake(); err != nil {
		tb.Fatalf("TLS to %s: %v", host, err)
	}
	return tc
}

// rqBlockingStore holds the next snapshot build, once armed, after it has
// read sandboxes, secrets and bindings: the build then finishes with what
// it read, after whatever the test did meanwhile.
type rqBlockingStore struct {
	Store
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

// arm makes the next ListRevoked wait; it returns a channel closed when a
// build is waiting, and a func that lets it go on.
func (b *rqBlockingStore) arm() (entered <-chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = true
	b.entered, b.release = make(chan struct{}), make(chan struct{})
	rel := b.release
	return b.entered, sync.OnceFunc(func() { close(rel) })
}

func (b *rqBlockingStore) ListRevoked(ctx context.Context) ([]store.Revoked, error) {
	b.mu.Lock()
	armed, entered, release := b.armed, b.entered, b.release
	b.armed = false
	b.mu.Unlock()
	if armed {
		close(entered)
		<-release
	}
	return b.Store.ListRevoked(ctx)
}

// rqH2Request sends one request as raw HTTP/2 frames on c, fields in the
// order given (pseudo-header fields too, so they may be malformed), and
// returns the response's :status, or 0 if the stream or connection was
// reset.
func rqH2Request(tb testing.TB, c net.Conn, fields [][2]string) int {
	tb.Helper()
	c.SetDeadline(time.Now().Add(rawDeadline))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		tb.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		tb.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		tb.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			tb.Fatalf("read HTTP/2 frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status, _ := strconv.Atoi(f.PseudoValue("status"))
				return status
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return 0
			}
		case *http2.GoAwayFrame:
			return 0
		}
	}
}

// TestProbeRequestTarget: a request target the Go server parses as an
// opaque URI ("x:https://b.test/") leaves URL.Host empty, so the Host
// check passes; forwarded as it is, it becomes the upstream's
// absolute-form target, which an origin server must prefer to Host (RFC
// 9112 section 3.2.2): on a shared front end, the real credential would
// go to b.test. The upstream here speaks HTTP/1.1 only (an HTTP/2 leg
// refuses such a :path by itself).
func TestProbeRequestTarget(t *testing.T) {
	r := newRig(t)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	up := newRQUpstream(t, false, "a.test", "b.test")
	_, proxy := rqGateway(t, r, up, []string{"a.test"}, nil)
	target := refusal{http.StatusBadRequest, CodeBadRequest, ReasonRequestTarget}

	for _, tt := range []struct{ name, target string }{
		{name: "scheme then absolute URI", target: "x:https://b.test/steal"},
		{name: "https scheme without slashes", target: "https:b.test/steal"},
		{name: "http scheme, absolute URI of the same host", target: "http:https://b.test/steal"},
	} {
		t.Run("HTTP/1.1 "+tt.name, func(t *testing.T) {
			before := len(up.requests())
			raw := exchange(t, rqTLS(t, r, proxy, "agent", "a.test"),
				"GET "+tt.target+" HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+"\r\nConnection: close\r\n\r\n")
			rs := parseResponses(t, raw)
			if len(rs) != 1 {
				t.Fatalf("got %d responses %v, want 1", len(rs), statuses(rs))
			}
			assertRefused(t, rs[0].status, rs[0].header, rs[0].body, target)
			if got := up.requests()[before:]; len(got) != 0 {
				t.Errorf("upstream received %d requests (first for Host %q, target %q), want none", len(got), got[0].Host, got[0].RequestURI)
			}
		})
	}
	t.Run("HTTP/2 :path opaque", func(t *testing.T) {
		before := len(up.requests())
		status := rqH2Request(t, rqTLS(t, r, proxy, "agent", "a.test", "h2"), [][2]string{
			{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", "x:https://b.test/steal"},
			{"authorization", "Bearer " + si}})
		if status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", status)
		}
		if got := up.requests()[before:]; len(got) != 0 {
			t.Errorf("upstream received %d requests (first for Host %q), want none", len(got), got[0].Host)
		}
	})
	// Targets that name the flow's own host, or only look like another
	// host, go out in origin form for a.test.
	for _, tt := range []struct{ name, target, path string }{
		{name: "absolute URI of the flow's host", target: "https://a.test/ok", path: "/ok"},
		{name: "userinfo naming another host", target: "https://b.test@a.test/ok", path: "/ok"},
		{name: "path starting with two slashes", target: "//b.test/ok", path: "//b.test/ok"},
	} {
		t.Run("HTTP/1.1 "+tt.name, func(t *testing.T) {
			before := len(up.requests())
			raw := exchange(t, rqTLS(t, r, proxy, "agent", "a.test"),
				"GET "+tt.target+" HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+"\r\nConnection: close\r\n\r\n")
			if rs := parseResponses(t, raw); len(rs) != 1 || rs[0].status != http.StatusOK {
				t.Fatalf("got %v, want one 200", statuses(parseResponses(t, raw)))
			}
			got := up.requests()[before:]
			if len(got) != 1 || got[0].Host != "a.test" || got[0].RequestURI != tt.path {
				t.Fatalf("upstream got %+v, want one request for a.test with target %q", got, tt.path)
			}
			if a := got[0].Header.Get("Authorization"); a != "Bearer "+realA {
				t.Errorf("Authorization upstream is not the swapped value")
			}
		})
	}
}

// rqValue is the real value of the probe secret on host.
func rqValue(host string) string {
	return "sk-live-REALVALUE-" + strings.TrimSuffix(host, ".test") + "/+=0123456789abcdef"
}

// TestProbeSlotConfusion: an auth slot written in every ambiguous way a
// parser might read differently. Each request either is refused before
// anything goes out, or reaches the upstream with the real value in
// exactly the slot (and the slot's value exactly as the sandbox wrote it,
// stand-in replaced), or with no real value at all.
func TestProbeSlotConfusion(t *testing.T) {
	slots := map[string]client.AuthSlot{
		"bearer.test": {Type: client.SlotBearer},
		"hdr.test":    {Type: client.SlotHeader, Header: "X-Api-Key", Template: "{value}"},
		"tpl.test":    {Type: client.SlotHeader, Header: "Authorization", Template: "token {value}"},
		"basic.test":  {Type: client.SlotBasic},
		"basicu.test": {Type: client.SlotBasic, SecretIn: "username"},
		"query.test":  {Type: client.SlotQuery, Param: "key"},
	}
	hosts := slices.Sorted(func(yield func(string) bool) {
		for h := range slots {
			if !yield(h) {
				return
			}
		}
	})
	r := newRig(t, hosts...)
	dials := hookDials(t, r)
	secrets := map[string]string{}
	for _, h := range hosts {
		name := "s-" + strings.TrimSuffix(h, ".test")
		r.secret(client.SecretCreate{Name: name, Value: rqValue(h), Hosts: []client.HostAuth{{Host: h, Auth: slots[h]}}})
		secrets["K_"+strings.ToUpper(strings.TrimSuffix(h, ".test"))] = name
	}
	env := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: secrets})
	standIn := func(host string) string { return env["K_"+strings.ToUpper(strings.TrimSuffix(host, ".test"))] }
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	ambiguous := refusal{http.StatusBadRequest, CodeBadRequest, ReasonAmbiguous}

	const (
		swapped = "swapped" // real value in the slot only
		kept    = "kept"    // forwarded with the stand-in, no real value
		dropped = "dropped" // forwarded, neither value arrives
	)
	tests := []struct {
		name, host string
		target     string // default "/p"
		lines      string // header lines; SI is the host's stand-in
		basic      string // if set, user:password (SI too) sent as Basic auth
		scheme     string // basic: the scheme as written, "Basic" if empty
		unpadded   bool   // basic: base64 without padding
		want       string // swapped, kept, dropped, or "" for refused
		refused    refusal
		where      string // swapped: where occurrences finds the value
		check      func(t *testing.T, s seen, real, si string)
	}{
		{name: "two Authorization headers", host: "bearer.test", lines: "Authorization: Bearer SI\r\nAuthorization: Bearer attacker\r\n", refused: ambiguous},
		{name: "Authorization in two cases", host: "bearer.test", lines: "authorization: Bearer attacker\r\nAUTHORIZATION: Bearer SI\r\n", refused: ambiguous},
		{name: "obs-fold", host: "bearer.test", lines: "Authorization: Bearer\r\n SI\r\n", want: swapped, where: "header Authorization"},
		{name: "suffix after the stand-in", host: "bearer.test", lines: "Authorization: Bearer SIextra\r\n", want: kept},
		{name: "two spaces", host: "bearer.test", lines: "Authorization: Bearer  SI\r\n", want: kept},
		{name: "tab", host: "bearer.test", lines: "Authorization: Bearer\tSI\r\n", want: kept},
		{name: "list of credentials", host: "bearer.test", lines: "Authorization: Bearer SI, Bearer attacker\r\n", want: kept},
		{name: "scheme in lower case", host: "bearer.test", lines: "Authorization: bearer SI\r\n", want: swapped, where: "header Authorization"},
		{name: "trailing whitespace", host: "bearer.test", lines: "Authorization: Bearer SI \t\r\n", want: swapped, where: "header Authorization"},
		{name: "underscore twin of the header", host: "hdr.test", lines: "X-Api-Key: SI\r\nX_Api_Key: SI\r\n", want: swapped, where: "header X-Api-Key",
			check: func(t *testing.T, s seen, real, si string) {
				if got := s.Header.Get("X_Api_Key"); got != si {
					t.Errorf("X_Api_Key upstream = %q, want the stand-in left as it is", got)
				}
			}},
		{name: "header twice", host: "hdr.test", lines: "X-Api-Key: SI\r\nx-api-key: SI\r\n", refused: ambiguous},
		{name: "stand-in doubled", host: "hdr.test", lines: "X-Api-Key: SISI\r\n", want: kept},
		{name: "slot header named hop-by-hop", host: "hdr.test", lines: "X-Api-Key: SI\r\nConnection: X-Api-Key\r\n", want: dropped},
		{name: "template with the stand-in twice", host: "tpl.test", lines: "Authorization: token SI token SI\r\n", want: kept},
		{name: "template in another case", host: "tpl.test", lines: "Authorization: Token SI\r\n", want: kept},
		{name: "template", host: "tpl.test", lines: "Authorization: token SI\r\n", want: swapped, where: "header Authorization"},
		{name: "basic: stand-in as user", host: "basic.test", basic: "SI:pw", want: kept},
		{name: "basic: stand-in as both", host: "basic.test", basic: "SI:SI", want: swapped, where: "basic Authorization",
			check: func(t *testing.T, s seen, real, si string) {
				if got := s.Header.Get("Authorization"); got != "Basic "+b64(si+":"+real) {
					t.Errorf("Authorization upstream is not Basic(stand-in:real)")
				}
			}},
		{name: "basic: unpadded", host: "basic.test", basic: "me:SI", unpadded: true, want: swapped, where: "basic Authorization"},
		{name: "basic: scheme in lower case", host: "basic.test", basic: "me:SI", scheme: "basic", want: swapped, where: "basic Authorization"},
		{name: "basic user slot: stand-in as password", host: "basicu.test", basic: "me:SI", want: kept},
		{name: "basic user slot", host: "basicu.test", basic: "SI:", want: swapped, where: "basic Authorization"},
		{name: "query: upper-case twin", host: "query.test", target: "/p?key=SI&KEY=attacker", want: swapped, where: "query",
			check: func(t *testing.T, s seen, real, si string) {
				if q, _ := url.ParseQuery(s.RawQuery); q.Get("key") != real || q.Get("KEY") != "attacker" {
					t.Errorf("query upstream: key is not the real value or KEY changed")
				}
			}},
		{name: "query: escaped-name twin", host: "query.test", target: "/p?key=SI&%6bey=attacker", refused: ambiguous},
		{name: "query: escaped name", host: "query.test", target: "/p?%6bey=SI", want: swapped, where: "query",
			check: func(t *testing.T, s seen, real, si string) {
				if q, _ := url.ParseQuery(s.RawQuery); len(q) != 1 || q.Get("key") != real {
					t.Errorf("query upstream does not hold the real value under key alone")
				}
			}},
		{name: "query: repeated", host: "query.test", target: "/p?key=SI&key=SI", refused: ambiguous},
		{name: "query: semicolon", host: "query.test", target: "/p?key=SI;x=1", want: dropped},
		{name: "query: in a fragment", host: "query.test", target: "/p?x=1#key=SI", want: kept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			si, real := standIn(tt.host), rqValue(tt.host)
			target := tt.target
			if target == "" {
				target = "/p"
			}
			before := len(r.up.requests())
			lines := strings.ReplaceAll(tt.lines, "SI", si)
			if tt.basic != "" {
				enc := base64.StdEncoding
				if tt.unpadded {
					enc = base64.RawStdEncoding
				}
				scheme := tt.scheme
				if scheme == "" {
					scheme = "Basic"
				}
				lines += "Authorization: " + scheme + " " + enc.EncodeToString([]byte(strings.ReplaceAll(tt.basic, "SI", si))) + "\r\n"
			}
			target = strings.ReplaceAll(target, "SI", url.QueryEscape(si))
			raw := "GET " + target + " HTTP/1.1\r\nHost: " + tt.host + "\r\n" + lines + "Connection: close\r\n\r\n"
			rs := parseResponses(t, exchange(t, sandboxTLS(t, r, "agent", tt.host), raw))
			if len(rs) != 1 {
				t.Fatalf("got %d responses %v, want 1", len(rs), statuses(rs))
			}
			reqs := r.up.requests()[before:]
			if tt.want == "" {
				assertRefused(t, rs[0].status, rs[0].header, rs[0].body, tt.refused)
				if len(reqs) != 0 {
					t.Errorf("upstream received %d requests, want none", len(reqs))
				}
				return
			}
			if rs[0].status != http.StatusOK || len(reqs) != 1 {
				t.Fatalf("status %d, upstream got %d requests: want 200 and one (%s)", rs[0].status, len(reqs), rs[0].body)
			}
			got := reqs[0]
			if a, ok := strings.CutPrefix(got.Header.Get("Authorization"), "basic "); ok {
				// occurrences decodes Basic only with the scheme so spelled.
				got.Header = got.Header.Clone()
				got.Header.Set("Authorization", "Basic "+a)
			}
			var want []string
			if tt.want == swapped {
				want = []string{tt.where}
			}
			if w := occurrences(got, real); !cmp.Equal(w, want) {
				t.Errorf("real value arrived in %v, want %v", w, want)
			}
			if w := occurrences(got, si); tt.want == kept && len(w) == 0 {
				t.Errorf("stand-in did not arrive, want it left as it is")
			}
			if tt.check != nil {
				tt.check(t, got, real, si)
			}
		})
	}
	dials.onlyUpstream(t, r)
}

// TestProbeHostForms: Host (HTTP/1.1) and :authority (HTTP/2) spelled in
// every way that might still equal the TLS name to one parser and not to
// another. What the gateway lets through reaches only the flow's host,
// under a Host that names it; the rest is refused with nothing sent.
func TestProbeHostForms(t *testing.T) {
	r := newRig(t, "a.test", "k.test", "b.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test", "k.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	misdirected := refusal{http.StatusMisdirectedRequest, CodeMisdirected, ReasonHostMismatch}
	// upstreamGot checks what reached the upstream since before for a
	// request the sandbox got status for: nothing unless 200, else one
	// request with Host upHost and the real value in the slot only.
	upstreamGot := func(t *testing.T, before, status int, upHost string) {
		t.Helper()
		reqs := r.up.requests()[before:]
		if status != http.StatusOK {
			if len(reqs) != 0 {
				t.Errorf("upstream received %d requests, want none", len(reqs))
			}
			return
		}
		if len(reqs) != 1 || reqs[0].Host != upHost {
			t.Fatalf("upstream got %d requests (%+v), want one with Host %q", len(reqs), reqs, upHost)
		}
		if w := occurrences(reqs[0], realA); !cmp.Equal(w, []string{"header Authorization"}) {
			t.Errorf("real value arrived in %v, want the slot", w)
		}
	}

	tests := []struct {
		name, head string // request line and Host line(s), without the rest
		status     int    // what the sandbox gets
		upHost     string // the upstream's Host, if forwarded
	}{
		{name: "upper case", head: "GET /p HTTP/1.1\r\nHost: A.TEST\r\n", status: 200, upHost: "A.TEST"},
		{name: "trailing dot", head: "GET /p HTTP/1.1\r\nHost: a.test.\r\n", status: 200, upHost: "a.test."},
		{name: "default port", head: "GET /p HTTP/1.1\r\nHost: a.test:443\r\n", status: 200, upHost: "a.test:443"},
		{name: "other port", head: "GET /p HTTP/1.1\r\nHost: a.test:8443\r\n", status: 200, upHost: "a.test:8443"},
		{name: "brackets", head: "GET /p HTTP/1.1\r\nHost: [a.test]\r\n", status: 200, upHost: "[a.test]"},
		{name: "two ports", head: "GET /p HTTP/1.1\r\nHost: a.test:443:443\r\n", status: 421},
		{name: "userinfo (Go's server refuses it)", head: "GET /p HTTP/1.1\r\nHost: a.test@b.test\r\n", status: 400},
		{name: "suffix domain", head: "GET /p HTTP/1.1\r\nHost: a.test.b.test\r\n", status: 421},
		{name: "punycode", head: "GET /p HTTP/1.1\r\nHost: xn--a-test\r\n", status: 421},
		{name: "no Host (HTTP/1.0)", head: "GET /p HTTP/1.0\r\n", status: 421},
		{name: "Expect: 100-continue for another host", head: "POST /p HTTP/1.1\r\nHost: b.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n", status: 421},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(r.up.requests())
			raw := tt.head + "Authorization: Bearer " + si + "\r\nConnection: close\r\n\r\n"
			if strings.Contains(tt.head, "Content-Length: 4") {
				raw += "body"
			}
			rs := parseResponses(t, exchange(t, sandboxTLS(t, r, "agent", "a.test"), raw))
			if len(rs) != 1 || rs[0].status != tt.status {
				t.Fatalf("got %v, want [%d]", statuses(rs), tt.status)
			}
			if tt.status == http.StatusMisdirectedRequest {
				assertRefused(t, rs[0].status, rs[0].header, rs[0].body, misdirected)
			}
			upstreamGot(t, before, tt.status, tt.upHost)
		})
	}

	// HTTP/2: Go's server does not check :authority's bytes as it checks
	// Host's. The Kelvin sign (U+212A) lower-cases to "k" with
	// strings.ToLower, but the upstream leg sends it as "xn--62g.test":
	// another name, on a front end that routes by Host.
	h2tests := []struct {
		name, flow, authority string
		status                int
		upHost                string
	}{
		{name: "Kelvin sign", flow: "k.test", authority: "\u212a.test", status: 421},
		{name: "upper case with port", flow: "a.test", authority: "A.TEST:443", status: 200, upHost: "A.TEST:443"},
		{name: "userinfo", flow: "a.test", authority: "b.test@a.test", status: 0},
		{name: "another host", flow: "a.test", authority: "b.test", status: 421},
		{name: "fullwidth letter", flow: "a.test", authority: "\uff41.test", status: 421},
	}
	for _, tt := range h2tests {
		t.Run("HTTP/2 "+tt.name, func(t *testing.T) {
			before := len(r.up.requests())
			tc, err := tunnelTLS(t, r, "agent", tt.flow+":443", &tls.Config{ServerName: tt.flow, RootCAs: r.caPool, NextProtos: []string{"h2"}})
			if err != nil {
				t.Fatal(err)
			}
			status := rqH2Request(t, tc, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", tt.authority},
				{":path", "/p"}, {"authorization", "Bearer " + si}})
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			upstreamGot(t, before, tt.status, tt.upHost)
		})
	}
	// The same sign in a CONNECT target: Go's server refuses the
	// request target itself.
	t.Run("CONNECT Kelvin sign", func(t *testing.T) {
		c, resp := connectTunnel(t, r, proxyAuth(t, r, "agent"), "\u212a.test:443")
		c.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("CONNECT \\u212a.test:443: status %d, want 400", resp.StatusCode)
		}
	})
	dials.onlyUpstream(t, r)
}

// TestProbeIPv4Forms: names that a C resolver (inet_aton) reads as
// 127.0.0.1, and loopback literals in other spellings. A locked-down
// sandbox has them refused by name before anything is resolved; an open
// one has the resolved address refused. Nothing is dialed.
func TestProbeIPv4Forms(t *testing.T) {
	r := newRig(t, "a.test")
	dials := hookDials(t, r)
	hit := make(chan string, 16)
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { hit <- req.URL.Path }))
	t.Cleanup(local.Close)
	port := strconv.Itoa(local.Listener.Addr().(*net.TCPAddr).Port)
	r.sandbox(client.SandboxCreate{Name: "locked", Network: client.NetworkRules{AllowOut: []string{"a.test"}, DenyOut: []string{"0.0.0.0/0", "::/0"}}})
	r.sandbox(client.SandboxCreate{Name: "open"})
	names := []string{"127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.0.0.1"}
	for _, n := range names {
		r.resolver.set(n, "127.0.0.1") // what getaddrinfo would answer
	}
	literals := []string{"127.0.0.1.", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]"}
	locked, open := r.httpClient("locked", false), r.httpClient("open", false)
	for _, h := range append(slices.Clone(names), literals...) {
		t.Run(h, func(t *testing.T) {
			assertConnectDenied(t, r, "locked", h+":"+port)
			status, hd, body := do(t, locked, newReq(t, http.MethodGet, "http://"+h+":"+port+"/locked", nil))
			assertRefused(t, status, hd, body, refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied})
			status, hd, body = do(t, open, newReq(t, http.MethodGet, "http://"+h+":"+port+"/open", nil))
			if slices.Contains(literals, h) {
				assertRefused(t, status, hd, body, refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied})
				assertConnectDenied(t, r, "open", h+":"+port)
				return
			}
			assertRefused(t, status, hd, body, refusal{http.StatusForbidden, CodeBlocked, ReasonSpecial})
			n := len(flowRefusals(r))
			if _, err := tunnelTLS(t, r, "open", h+":"+port, &tls.Config{ServerName: h, InsecureSkipVerify: true}); err == nil {
				t.Errorf("TLS through CONNECT %s succeeded, want the flow closed", h)
			}
			assertFlowRefused(t, r, n, ReasonUpstream)
		})
	}
	select {
	case p := <-hit:
		t.Errorf("local listener got %s", p)
	default:
	}
	assertNoDials(t, dials)
}

// TestProbeTrailers: request trailers arrive after the swap; a slot
// header sent as a trailer (HTTP/1.1 chunked, HTTP/2) is never swapped,
// and the real value goes only into the header slot. Go's HTTP/2 server
// refuses an Authorization trailer outright (not a valid trailer name).
func TestProbeTrailers(t *testing.T) {
	r := newRig(t)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: []client.HostAuth{
		{Host: "a.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
		{Host: "a.test", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "X-Api-Key", Template: "{value}"}}}})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	for _, h2up := range []bool{false, true} {
		up := newRQUpstream(t, h2up, "a.test")
		_, proxy := rqGateway(t, r, up, []string{"a.test"}, nil)
		// check asserts what the last request upstream held: the real
		// value in the Authorization header if header, the stand-in (or
		// nothing) in each trailer, the real value nowhere else.
		// Each subtest has its own path: a stream refused after its body
		// may still be recorded upstream during the next subtest.
		seq := 0
		path := func() string { seq++; return fmt.Sprintf("/t%d", seq) }
		check := func(t *testing.T, path string, header bool, trailers ...string) {
			t.Helper()
			var hits []rqHit
			for _, h := range up.requests() {
				if h.RequestURI == path {
					hits = append(hits, h)
				}
			}
			if len(hits) != 1 {
				t.Fatalf("upstream got %d requests for %s, want 1", len(hits), path)
			}
			got := hits[0]
			if swapped := got.Header.Get("Authorization") == "Bearer "+realA; swapped != header {
				t.Errorf("Authorization header swapped = %v, want %v", swapped, header)
			}
			if v := got.Header.Get("X-Api-Key"); v != "" {
				t.Errorf("X-Api-Key reached the upstream's headers")
			}
			for _, k := range trailers {
				if v := got.Trailer.Get(k); v != "" && !strings.Contains(v, si) {
					t.Errorf("trailer %s upstream is neither empty nor the stand-in", k)
				}
			}
			for k, vs := range got.Trailer {
				if strings.Contains(strings.Join(vs, ","), realA) {
					t.Errorf("real value in request trailer %s", k)
				}
			}
			if strings.Contains(got.Body, realA) {
				t.Error("real value in the body")
			}
		}
		for _, header := range []bool{true, false} {
			t.Run(fmt.Sprintf("HTTP/1.1 chunked/h2 upstream=%v/header=%v", h2up, header), func(t *testing.T) {
				p := path()
				raw := "POST " + p + " HTTP/1.1\r\nHost: a.test\r\nTrailer: Authorization, X-Api-Key\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
				if header {
					raw += "Authorization: Bearer " + si + "\r\n"
				}
				raw += "\r\n5\r\nhello\r\n0\r\nAuthorization: Bearer " + si + "\r\nX-Api-Key: " + si + "\r\n\r\n"
				rs := parseResponses(t, exchange(t, rqTLS(t, r, proxy, "agent", "a.test"), raw))
				if len(rs) != 1 || rs[0].status != http.StatusOK {
					t.Fatalf("got %v, want one 200", statuses(rs))
				}
				check(t, p, header, "Authorization", "X-Api-Key")
			})
			for _, trailer := range []string{"X-Api-Key", "Authorization"} {
				t.Run(fmt.Sprintf("HTTP/2 %s trailer/h2 upstream=%v/header=%v", trailer, h2up, header), func(t *testing.T) {
					p := path()
					pu := r.proxyURL("agent")
					pu.Host = proxy
					tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: r.caPool}, ForceAttemptHTTP2: true}
					t.Cleanup(tr.CloseIdleConnections)
					req := newReq(t, http.MethodPost, "https://a.test"+p, io.MultiReader(strings.NewReader("hello")))
					req.Trailer = http.Header{trailer: {"Bearer " + si}}
					if header {
						req.Header.Set("Authorization", "Bearer "+si)
					}
					resp, err := tr.RoundTrip(req)
					if trailer == "Authorization" {
						if err == nil || !strings.Contains(err.Error(), "PROTOCOL_ERROR") {
							t.Fatalf("got %v, want the stream refused (PROTOCOL_ERROR)", err)
						}
						for _, h := range up.requests() {
							if h.RequestURI == p && strings.Contains(h.Trailer.Get("Authorization"), realA) {
								t.Error("real value in the upstream's Authorization trailer")
							}
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
						t.Fatalf("got %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
					}
					check(t, p, header, trailer)
				})
			}
		}
	}
}

// TestProbeUpgrade: after a WebSocket handshake with a secret's host, the
// stream is raw bytes to that host: a request for another host written
// into it goes nowhere else and is never swapped. An h2c upgrade offer and
// a slot header named in Connection get no special treatment either.
func TestProbeUpgrade(t *testing.T) {
	r := newRig(t)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	up := newRQUpstream(t, false, "a.test", "b.test")
	_, proxy := rqGateway(t, r, up, []string{"a.test"}, nil)

	t.Run("WebSocket then a request for another host", func(t *testing.T) {
		type upgraded struct {
			auth   string
			stream []byte
		}
		got := make(chan upgraded, 1)
		up.handle(func(w http.ResponseWriter, req *http.Request) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			b, _ := io.ReadAll(brw)
			got <- upgraded{auth: req.Header.Get("Authorization"), stream: b}
		})
		t.Cleanup(func() { up.handle(nil) })
		before := len(up.requests())
		tc := rqTLS(t, r, proxy, "agent", "a.test")
		br := bufio.NewReader(tc)
		io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v, want 101", resp, err)
		}
		smuggled := "GET /next HTTP/1.1\r\nHost: b.test\r\nAuthorization: Bearer " + si + "\r\n\r\n"
		io.WriteString(tc, smuggled)
		tc.CloseWrite()
		u := <-got
		if u.auth != "Bearer "+realA {
			t.Errorf("handshake Authorization is not the swapped value")
		}
		if string(u.stream) != smuggled {
			t.Errorf("upgraded stream upstream = %q, want the sandbox's bytes as they are", hideReal(string(u.stream), realA))
		}
		if n := len(up.requests()) - before; n != 0 {
			t.Errorf("upstream parsed %d more requests, want none", n)
		}
	})
	for _, tt := range []struct {
		name, lines string
		wantAuth    string
	}{
		{name: "h2c upgrade offer", lines: "Authorization: Bearer SI\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n",
			wantAuth: "Bearer " + realA},
		{name: "slot header named in Connection", lines: "Authorization: Bearer SI\r\nConnection: Authorization\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			raw := "GET /p HTTP/1.1\r\nHost: a.test\r\n" + strings.ReplaceAll(tt.lines, "SI", si) + "\r\n"
			tc := rqTLS(t, r, proxy, "agent", "a.test")
			got := roundTripRaw(t, tc, bufio.NewReader(tc), raw)
			if got.status != http.StatusOK {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
			hits := up.requests()[before:]
			if len(hits) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(hits))
			}
			if a := hits[0].Header.Get("Authorization"); a != tt.wantAuth {
				t.Errorf("Authorization upstream = %q, want %q", hideReal(a, realA), hideReal(tt.wantAuth, realA))
			}
			for k, vs := range hits[0].Header {
				if k != "Authorization" && strings.Contains(strings.Join(vs, ","), realA) {
					t.Errorf("real value in header %s", k)
				}
			}
		})
	}
}

// TestProbePools: upstream connections are pooled per sandbox: a
// sandbox's requests reuse its own connection and never another
// sandbox's, and a stand-in of another sandbox is refused.
func TestProbePools(t *testing.T) {
	r := newRig(t)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si1 := r.sandbox(client.SandboxCreate{Name: "one", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	si2 := r.sandbox(client.SandboxCreate{Name: "two", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	up := newRQUpstream(t, true, "a.test")
	_, proxy := rqGateway(t, r, up, []string{"a.test"}, nil)
	client := func(sandbox string) *http.Client {
		pu := r.proxyURL(sandbox)
		pu.Host = proxy
		tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: r.caPool}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	c1, c2 := client("one"), client("two")
	for _, step := range []struct {
		c      *http.Client
		path   string
		tok    string
		status int
	}{
		{c1, "/1", si1, 200}, {c1, "/2", si1, 200}, {c2, "/3", si2, 200}, {c2, "/4", si1, 403}, {c1, "/5", si2, 403},
	} {
		status, h, body := do(t, step.c, bearerReq(t, "https://a.test"+step.path, step.tok))
		if step.status == http.StatusForbidden {
			assertRefused(t, status, h, body, refusal{http.StatusForbidden, CodeRevoked, ReasonRevoked})
		} else if status != step.status {
			t.Fatalf("%s: status %d, want %d", step.path, status, step.status)
		}
	}
	hits := up.requests()
	var paths []string
	for _, h := range hits {
		paths = append(paths, h.RequestURI)
	}
	if want := []string{"/1", "/2", "/3"}; !cmp.Equal(paths, want) {
		t.Fatalf("upstream paths %v, want %v", paths, want)
	}
	if hits[0].RemoteAddr != hits[1].RemoteAddr {
		t.Errorf("sandbox one's second request came on a new upstream connection, want its pooled one")
	}
	if hits[2].RemoteAddr == hits[0].RemoteAddr {
		t.Errorf("sandbox two's request came on sandbox one's upstream connection %s", hits[0].RemoteAddr)
	}
}

// TestProbeRulesChange: on an open connection, after the rules change, a
// request for a host they now deny is refused, and an upstream connection
// pooled under the old rules is not reused for an address they now deny.
func TestProbeRulesChange(t *testing.T) {
	ctx := context.Background()
	r, dials, si := agentRig(t)
	h2 := r.httpClient("agent", true)
	open := sandboxTLS(t, r, "agent", "a.test")
	br := bufio.NewReader(open)
	if got := roundTripRaw(t, open, br, rawGet("/h1-before", si)); got.status != http.StatusOK {
		t.Fatalf("before: status %d: %s", got.status, got.body)
	}
	if status, _, body := do(t, h2, bearerReq(t, "https://a.test/h2-before", si)); status != http.StatusOK {
		t.Fatalf("before: status %d: %s", status, body)
	}
	steps := []struct {
		name  string
		rules client.NetworkRules
		want  refusal
	}{
		// a.test's upstream is on 127.0.0.1 (an override: trusted, so
		// not a special address, but still judged by deny CIDRs).
		{name: "deny its address", rules: client.NetworkRules{DenyOut: []string{"127.0.0.0/8"}},
			want: refusal{http.StatusForbidden, CodeBlocked, "upstream refused: " + ReasonDenied}},
		{name: "deny its name", rules: client.NetworkRules{AllowOut: []string{"c.test"}, DenyOut: []string{"0.0.0.0/0"}},
			want: refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := r.api.SetNetwork(ctx, "agent", st.rules); err != nil {
				t.Fatal(err)
			}
			got := roundTripRaw(t, open, br, rawGet("/h1-after", si))
			assertRefused(t, got.status, got.header, got.body, st.want)
			status, h, body := do(t, h2, bearerReq(t, "https://a.test/h2-after", si))
			assertRefused(t, status, h, body, st.want)
		})
	}
	if reqs := r.up.requests(); len(reqs) != 2 {
		t.Errorf("upstream got %d requests, want only the two before", len(reqs))
	}
	if got := len(dials.tried()); got != 1 {
		t.Errorf("gateway dialed %d times, want 1 (before the change)", got)
	}
}

// rqRaceInvalidate opens a keep-alive flow to a.test through a gateway over
// bs, then sends a request whose snapshot build reads the store before
// change runs and finishes after it (and after the gateway's Invalidate,
// as the API does for every write): an Invalidate racing with a request.
// It returns that request's response and the open connection.
func rqRaceInvalidate(t *testing.T, r *rig, gw *Gateway, proxy string, bs *rqBlockingStore, si string, change func()) (rawResponse, net.Conn, *bufio.Reader) {
	t.Helper()
	c := rqTLS(t, r, proxy, "agent", "a.test")
	br := bufio.NewReader(c)
	if got := roundTripRaw(t, c, br, rawGet("/warm", si)); got.status != http.StatusOK {
		t.Fatalf("warm-up: status %d: %s", got.status, got.body)
	}
	gw.Invalidate()
	entered, release := bs.arm()
	t.Cleanup(release)
	done := make(chan rawResponse, 1)
	go func() {
		c.SetDeadline(time.Now().Add(rawDeadline))
		var out rawResponse
		if _, err := io.WriteString(c, rawGet("/racing", si)); err == nil {
			if resp, err := http.ReadResponse(br, nil); err == nil {
				out.status, out.header = resp.StatusCode, resp.Header
				out.body, _ = io.ReadAll(resp.Body)
			}
		}
		done <- out
	}()
	select {
	case <-entered:
	case <-time.After(rawDeadline):
		t.Fatal("the racing request never rebuilt the snapshot")
	}
	change()
	gw.Invalidate()
	release()
	return <-done, c, br
}

// TestProbeInvalidateRace: a request in flight when the API writes may
// finish under the old snapshot, but what it caches (the response
// scrubber, the upstream pool) must not outlive the Invalidate that the
// write made: else a rotated value echoed by the upstream reaches the
// sandbox unscrubbed, and a pool dialing under the old rules keeps
// serving the sandbox's later requests.
func TestProbeInvalidateRace(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*rig, *Gateway, string, *rqBlockingStore, string, *rqUpstream) {
		r := newRig(t)
		r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
		si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
		up := newRQUpstream(t, true, "a.test")
		bs := &rqBlockingStore{Store: r.store}
		gw, proxy := rqGateway(t, r, up, []string{"a.test"}, func(c *Config) { c.Store = bs })
		return r, gw, proxy, bs, si, up
	}

	t.Run("rotate: the new value is scrubbed", func(t *testing.T) {
		r, gw, proxy, bs, si, up := setup(t)
		up.handle(func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, "you sent "+req.Header.Get("Authorization"))
		})
		const rotated = "sk-live-ROTATEDVALUE-9999999999999999"
		racing, c, br := rqRaceInvalidate(t, r, gw, proxy, bs, si, func() {
			if _, err := r.api.RotateSecret(ctx, "sa", rotated); err != nil {
				t.Fatal(err)
			}
		})
		if racing.status != http.StatusOK {
			t.Fatalf("racing request: status %d: %s", racing.status, racing.body)
		}
		for _, conn := range []string{"same connection", "new connection"} {
			if conn == "new connection" {
				c = rqTLS(t, r, proxy, "agent", "a.test")
				br = bufio.NewReader(c)
			}
			got := roundTripRaw(t, c, br, rawGet("/after", si))
			hits := up.requests()
			if got.status != http.StatusOK || hits[len(hits)-1].Header.Get("Authorization") != "Bearer "+rotated {
				t.Fatalf("%s: status %d, want 200 with the rotated value upstream", conn, got.status)
			}
			if string(got.body) != "you sent Bearer "+si {
				t.Errorf("%s: sandbox got %q, want the echo scrubbed to the stand-in", conn, hideReal(hideReal(string(got.body), rotated), realA))
			}
		}
	})

	t.Run("detach: the racing request does not go out", func(t *testing.T) {
		r, gw, proxy, bs, si, up := setup(t)
		before := len(up.requests())
		racing, _, _ := rqRaceInvalidate(t, r, gw, proxy, bs, si, func() {
			if err := r.api.Detach(ctx, "agent", "A_KEY"); err != nil {
				t.Fatal(err)
			}
		})
		// Judged and swapped under the old snapshot, it would have
		// carried the real value after the detach was acknowledged.
		assertRefused(t, racing.status, racing.header, racing.body, refusal{http.StatusForbidden, CodeRevoked, ReasonRevoked})
		if n := len(up.requests()) - before; n != 1 {
			t.Errorf("upstream got %d requests, want only the warm-up", n)
		}
	})

	t.Run("store gone: the racing request gets 503", func(t *testing.T) {
		r := newRig(t)
		r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
		si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
		up := newRQUpstream(t, true, "a.test")
		fs := &failingStore{Store: r.store}
		bs := &rqBlockingStore{Store: fs}
		gw, proxy := rqGateway(t, r, up, []string{"a.test"}, func(c *Config) { c.Store = bs })
		before := len(up.requests())
		// The write that raced it left the store unreadable: whether its
		// credential may still go out cannot be known, so it does not.
		racing, _, _ := rqRaceInvalidate(t, r, gw, proxy, bs, si, func() { fs.fail.Store(true) })
		assertRefused(t, racing.status, racing.header, racing.body, refusal{http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable})
		if n := len(up.requests()) - before; n != 1 {
			t.Errorf("upstream got %d requests, want only the warm-up", n)
		}
		// Without a credential it is not tracked, but its connection,
		// dialed under the old rules, is judged and refused the same way.
		fs.fail.Store(false)
		racing, _, _ = rqRaceInvalidate(t, r, gw, proxy, bs, "", func() { fs.fail.Store(true) })
		assertRefused(t, racing.status, racing.header, racing.body, refusal{http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable})
		if n := len(up.requests()) - before; n != 2 {
			t.Errorf("upstream got %d requests, want only the two warm-ups", n)
		}
	})

	t.Run("rules: a pool dialed under the old rules is dropped", func(t *testing.T) {
		r, gw, proxy, bs, si, up := setup(t)
		before := len(up.requests())
		racing, c, br := rqRaceInvalidate(t, r, gw, proxy, bs, si, func() {
			// a.test's upstream is on 127.0.0.1.
			if _, err := r.api.SetNetwork(ctx, "agent", client.NetworkRules{DenyOut: []string{"127.0.0.0/8"}}); err != nil {
				t.Fatal(err)
			}
		})
		// The racing request was judged under the old rules, but its
		// connection was dialed after the change was acknowledged: the
		// live set judges it again, and it never carries the request.
		denied := refusal{http.StatusForbidden, CodeBlocked, "upstream refused: " + ReasonDenied}
		assertRefused(t, racing.status, racing.header, racing.body, denied)
		got := roundTripRaw(t, c, br, rawGet("/after", si))
		assertRefused(t, got.status, got.header, got.body, denied)
		c2 := rqTLS(t, r, proxy, "agent", "a.test")
		got = roundTripRaw(t, c2, bufio.NewReader(c2), rawGet("/after-new", si))
		assertRefused(t, got.status, got.header, got.body, denied)
		if n := len(up.requests()) - before; n != 1 {
			t.Errorf("upstream got %d requests, want only the warm-up before the rules denied its address", n)
		}
	})
}

// TestProbeScrubberCache: every distinct host a sandbox names (plain HTTP
// through the proxy, even one that does not resolve, with a name as long
// as a request line allows) must not leave a cache entry behind until the
// next API write: a sandbox could grow the gateway's memory without
// bound, for every sandbox. Hosts under one wildcard secret share one.
func TestProbeScrubberCache(t *testing.T) {
	r := newRig(t)
	hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sw", Value: realA, Hosts: bearerOn("*.wild.test")})
	r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"W_KEY": "sw"}})
	c := r.httpClient("agent", false)
	long := strings.Repeat("x", 60) + "."
	long = strings.Repeat(long, 64<<10/len(long)) + "test" // 64 KiB
	hosts := []string{long}
	for i := range 50 {
		hosts = append(hosts, fmt.Sprintf("h%d.nowhere.test", i), fmt.Sprintf("h%d.wild.test", i))
	}
	for _, h := range hosts {
		status, _, body := do(t, c, newReq(t, http.MethodGet, "http://"+h+"/", nil))
		if status != http.StatusBadGateway {
			t.Fatalf("GET http://%.40s.../: status %d, want 502 (does not resolve): %s", h, status, body)
		}
	}
	r.gw.mu.Lock()
	n, size := len(r.gw.scrubbers), 0
	for k := range r.gw.scrubbers {
		size += len(k)
	}
	r.gw.mu.Unlock()
	if n > 1 || size > 1024 {
		t.Errorf("%d requests to distinct hosts left %d scrubber cache entries (%d bytes of keys), want at most 1 (the wildcard secret's)", len(hosts), n, size)
	}
}

// TestNormalizeNames: the names the gateway compares fold ASCII letters
// only; a non-ASCII letter that Unicode folds into an ASCII one stays
// itself, so it never passes for the allowed name it resembles (SNI, Host,
// the dialer's names, the secret's hosts).
func TestNormalizeNames(t *testing.T) {
	tests := []struct{ in, want string }{
		{"API.Example.TEST.", "api.example.test"},
		{"api.example.test", "api.example.test"},
		{"\u212a.test", "\u212a.test"},               // Kelvin sign: strings.ToLower makes it "k"
		{"\u0130stanbul.test", "\u0130stanbul.test"}, // dotted capital I
	}
	for _, tt := range tests {
		if got := hostOnly(tt.in + ":443"); got != tt.want {
			t.Errorf("hostOnly(%q) = %q, want %q", tt.in+":443", got, tt.want)
		}
		if got := normalizeName(tt.in); got != tt.want {
			t.Errorf("normalizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	hosts := []client.HostAuth{{Host: "k.test", Auth: client.AuthSlot{Type: "bearer"}}}
	if got := catalog.SlotsFor(hosts, "\u212a.test"); len(got) != 0 {
		t.Errorf("SlotsFor(k.test, %q) = %v, want no slot", "\u212a.test", got)
	}
}
