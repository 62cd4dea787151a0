package gateway

// Attack tests. Each test is what code inside a sandbox would try in order
// to get a real credential out, or to get past its network rules, and it
// asserts the exact way the attempt fails: the status, error code and
// reason the sandbox gets, and what the upstream received (nothing, or
// never the real value).
//
// Every connection stays on loopback: the rig's dial guard is 127.0.0.0/8,
// names resolve through the rig's fake resolver, and hookDials replaces the
// Dialer's connect function with one that records every address and
// refuses anything outside 127.0.0.0/8 before a socket exists, so a test
// expecting "10.0.0.1 is refused" sends nothing even if the gateway's own
// refusal were deleted.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/vault"
)

// Real values of the attack tests' secrets. realA has characters that
// URL-encoding changes, so the encoded forms differ from the raw one.
const (
	realA = "sk-live-REALVALUE/A+aaaa=0123456789abcdef"
	realB = "sk-live-REALVALUE-B-fedcba9876543210"
)

// rawDeadline only stops a broken test from hanging; nothing asserts on
// time.
const rawDeadline = 20 * time.Second

func bearerOn(hosts ...string) []client.HostAuth {
	var out []client.HostAuth
	for _, h := range hosts {
		out = append(out, client.HostAuth{Host: h, Auth: client.AuthSlot{Type: client.SlotBearer}})
	}
	return out
}

// hookDials makes every upstream connection of r go through a recorder that
// refuses any address outside 127.0.0.0/8. Call it right after newRig,
// before any request.
func hookDials(tb testing.TB, r *rig) *dialLog {
	tb.Helper()
	l := &dialLog{}
	r.gw.cfg.Dialer.dialFunc = l.loopbackOnly(tb)
	return l
}

// onlyUpstream fails the test if the gateway dialed anything but the
// rig's fake upstream.
func (l *dialLog) onlyUpstream(tb testing.TB, r *rig) {
	tb.Helper()
	for _, d := range l.tried() {
		if d != r.up.addr.String() {
			tb.Errorf("gateway dialed %s, want only the upstream", d)
		}
	}
}

// assertNoDials fails if the gateway tried to connect anywhere.
func assertNoDials(tb testing.TB, l *dialLog) {
	tb.Helper()
	if got := l.tried(); len(got) != 0 {
		tb.Errorf("gateway dialed %v, want no upstream connection", got)
	}
}

// assertUpstreamUntouched fails if the fake upstream got requests beyond
// the first before.
func assertUpstreamUntouched(tb testing.TB, r *rig, before int) {
	tb.Helper()
	if reqs := r.up.requests(); len(reqs) != before {
		for _, s := range reqs[before:] {
			tb.Errorf("upstream received %s %s (Host %q)", s.Method, s.Path, s.Host)
		}
	}
}

// proxyAuth is the sandbox's Proxy-Authorization value.
func proxyAuth(tb testing.TB, r *rig, sandbox string) string {
	tb.Helper()
	u := r.proxyURL(sandbox)
	pw, _ := u.User.Password()
	return basicAuth(u.User.Username(), pw)
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// connectTunnel sends CONNECT target to the rig's proxy with auth as
// Proxy-Authorization (none if "") and returns the connection, positioned
// after the proxy's answer, and that answer.
func connectTunnel(tb testing.TB, r *rig, auth, target string) (net.Conn, *http.Response) {
	tb.Helper()
	c, err := net.Dial("tcp", r.proxy)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(rawDeadline))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		tb.Fatalf("CONNECT %s: %v", target, err)
	}
	return &prefixConn{Conn: c, r: br}, resp
}

// tunnelTLS opens a CONNECT tunnel for sandbox to target and starts TLS in
// it with cfg; the handshake error is the caller's to judge.
func tunnelTLS(tb testing.TB, r *rig, sandbox, target string, cfg *tls.Config) (*tls.Conn, error) {
	tb.Helper()
	c, resp := connectTunnel(tb, r, proxyAuth(tb, r, sandbox), target)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("CONNECT %s: status %d, want 200", target, resp.StatusCode)
	}
	tc := tls.Client(c, cfg)
	return tc, tc.Handshake()
}

// sandboxTLS is an HTTP/1.1 TLS connection from sandbox to host:443 through
// the proxy, trusting standin's CA, as a sandboxed client makes it.
func sandboxTLS(tb testing.TB, r *rig, sandbox, host string) *tls.Conn {
	tb.Helper()
	tc, err := tunnelTLS(tb, r, sandbox, host+":443",
		&tls.Config{ServerName: host, RootCAs: r.caPool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		tb.Fatalf("TLS to %s through the gateway: %v", host, err)
	}
	return tc
}

// exchange writes raw to c and returns every byte read until c is closed.
func exchange(tb testing.TB, c net.Conn, raw string) []byte {
	tb.Helper()
	c.SetDeadline(time.Now().Add(rawDeadline))
	if _, err := io.WriteString(c, raw); err != nil {
		tb.Fatalf("write request: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		tb.Fatalf("read until close: %v (after %q)", err, got)
	}
	return got
}

// rawResponse is one response parsed from raw bytes.
type rawResponse struct {
	status  int
	header  http.Header
	body    []byte
	trailer http.Header
}

// parseResponses parses every HTTP/1.1 response in raw (answers to GET or
// POST; informational responses included), decoding chunked bodies.
func parseResponses(tb testing.TB, raw []byte) []rawResponse {
	tb.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	var out []rawResponse
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			tb.Fatalf("parse response %d: %v in %q", len(out)+1, err, raw)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			tb.Fatalf("read response %d body: %v in %q", len(out)+1, err, raw)
		}
		out = append(out, rawResponse{status: resp.StatusCode, header: resp.Header, body: body, trailer: resp.Trailer})
	}
}

func statuses(rs []rawResponse) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.status)
	}
	return out
}

// refusal is how the gateway answers a refused request.
type refusal struct {
	status       int
	code, reason string
}

func refusalOf(body []byte) (code, message string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error.Code, e.Error.Message
}

// assertRefused checks status, the error code in the body and in
// X-Standin-Error (if h is not nil), and that the message holds the reason.
func assertRefused(tb testing.TB, status int, h http.Header, body []byte, want refusal) {
	tb.Helper()
	code, msg := refusalOf(body)
	if status != want.status || code != want.code || !strings.Contains(msg, want.reason) {
		tb.Errorf("got %d %q %q, want %d %q with reason %q", status, code, msg, want.status, want.code, want.reason)
	}
	if h != nil && h.Get("X-Standin-Error") != want.code {
		tb.Errorf("X-Standin-Error = %q, want %q", h.Get("X-Standin-Error"), want.code)
	}
}

// flowRefusals returns the reasons of the gateway's "flow refused" log
// lines so far.
func flowRefusals(r *rig) []string {
	var out []string
	for line := range strings.SplitSeq(r.logs.String(), "\n") {
		var e struct{ Msg, Reason string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "flow refused" {
			out = append(out, e.Reason)
		}
	}
	return out
}

// assertFlowRefused fails unless a "flow refused" line with reason was
// logged after the first n.
func assertFlowRefused(tb testing.TB, r *rig, n int, reason string) {
	tb.Helper()
	got := flowRefusals(r)
	if !slices.Contains(got[min(n, len(got)):], reason) {
		tb.Errorf("flow refusals logged %q, want %q", got[min(n, len(got)):], reason)
	}
}

// assertConnectDenied fails unless sandbox's CONNECT to target is refused
// by the network rules, with the refusal answered and logged.
func assertConnectDenied(tb testing.TB, r *rig, sandbox, target string) {
	tb.Helper()
	n := len(flowRefusals(r))
	_, resp := connectTunnel(tb, r, proxyAuth(tb, r, sandbox), target)
	body, _ := io.ReadAll(resp.Body)
	assertRefused(tb, resp.StatusCode, resp.Header, body, refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied})
	assertFlowRefused(tb, r, n, ReasonRuleDenied)
}

// TestAttackDomainFronting: TLS for a secret host, HTTP for another host.
// The request is refused before anything is dialed, so the secret host's
// credential can never be sent under another name.
func TestAttackDomainFronting(t *testing.T) {
	r := newRig(t, "a.test", "b.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	misdirected := refusal{http.StatusMisdirectedRequest, CodeMisdirected, ReasonHostMismatch}
	tunnelled := refusal{http.StatusMethodNotAllowed, CodeBadRequest, ReasonConnectTunnel}

	// Host header (HTTP/1.1) or :authority (HTTP/2) naming b.test on a
	// connection whose TLS name is a.test.
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("Host header/h2=%v", h2), func(t *testing.T) {
			before := len(r.up.requests())
			req := newReq(t, http.MethodGet, "https://a.test/v1/steal", nil)
			req.Host = "b.test"
			req.Header.Set("Authorization", "Bearer "+si)
			status, h, body := do(t, r.httpClient("agent", h2), req)
			assertRefused(t, status, h, body, misdirected)
			assertUpstreamUntouched(t, r, before)
		})
	}

	tests := []struct {
		name string
		req  string
		want refusal
	}{
		{name: "absolute URI naming another host",
			req:  "GET https://b.test/v1/steal HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer SI\r\nConnection: close\r\n\r\n",
			want: misdirected},
		{name: "absolute URI and Host naming another host",
			req:  "GET https://b.test/v1/steal HTTP/1.1\r\nHost: b.test\r\nAuthorization: Bearer SI\r\nConnection: close\r\n\r\n",
			want: misdirected},
		{name: "Host with port naming another host",
			req:  "GET /v1/steal HTTP/1.1\r\nHost: b.test:443\r\nAuthorization: Bearer SI\r\nConnection: close\r\n\r\n",
			want: misdirected},
		{name: "CONNECT to another host inside the tunnel",
			req:  "CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\nAuthorization: Bearer SI\r\nConnection: close\r\n\r\n",
			want: tunnelled},
		{name: "CONNECT to the same host inside the tunnel",
			req:  "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nAuthorization: Bearer SI\r\nConnection: close\r\n\r\n",
			want: tunnelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(r.up.requests())
			raw := exchange(t, sandboxTLS(t, r, "agent", "a.test"), strings.ReplaceAll(tt.req, "SI", si))
			rs := parseResponses(t, raw)
			if len(rs) != 1 {
				t.Fatalf("got %d responses %v, want 1", len(rs), statuses(rs))
			}
			assertRefused(t, rs[0].status, rs[0].header, rs[0].body, tt.want)
			assertUpstreamUntouched(t, r, before)
		})
	}
	assertNoDials(t, dials)
}

// TestAttackSNIMismatch: a TLS server name other than the CONNECT target
// (fronting through an allowed or secret host) closes the flow before
// anything is dialed.
func TestAttackSNIMismatch(t *testing.T) {
	r := newRig(t, "a.test", "b.test", "c.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"},
		Network: client.NetworkRules{AllowOut: []string{"a.test", "c.test"}, DenyOut: []string{"0.0.0.0/0"}}})["A_KEY"]

	tests := []struct{ name, target, sni string }{
		{name: "secret host, another name in SNI", target: "a.test:443", sni: "b.test"},
		{name: "allowed host fronting a denied one", target: "c.test:443", sni: "b.test"},
		{name: "allowed host, secret host in SNI", target: "c.test:443", sni: "a.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(flowRefusals(r))
			// The attacker accepts any certificate: what protects the
			// credential must be the gateway, not the sandbox's checks.
			tc, err := tunnelTLS(t, r, "agent", tt.target, &tls.Config{ServerName: tt.sni,
				InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err == nil {
				raw := exchange(t, tc, "GET / HTTP/1.1\r\nHost: "+tt.sni+"\r\nAuthorization: Bearer "+si+"\r\nConnection: close\r\n\r\n")
				t.Errorf("TLS with SNI %q through CONNECT %s succeeded (then got %q), want the flow closed", tt.sni, tt.target, raw)
			}
			assertFlowRefused(t, r, n, ReasonSNIMismatch)
		})
	}
	assertUpstreamUntouched(t, r, 0)
	assertNoDials(t, dials)
}

// TestAttackAllowlistOnly is the announcement case: allowOut
// ["api.anthropic.com"] with denyOut ["0.0.0.0/0"] reaches that host and
// nothing else, even a host that has a secret bound and is routed by an
// upstream override.
func TestAttackAllowlistOnly(t *testing.T) {
	r := newRig(t, "api.anthropic.com", "b.test", "c.test")
	dials := hookDials(t, r)
	const realAnthropic = "REALVALUEanthropicx0123456789abcdef"
	anth := r.secret(client.SecretCreate{Name: "anthropic", Provider: "anthropic", Value: realAnthropic})
	r.secret(client.SecretCreate{Name: "sb", Value: realB, Hosts: bearerOn("b.test")})
	env := r.sandbox(client.SandboxCreate{Name: "agent",
		Secrets: map[string]string{"ANTHROPIC_API_KEY": "anthropic", "B_KEY": "sb"},
		Network: client.NetworkRules{AllowOut: []string{"api.anthropic.com"}, DenyOut: []string{"0.0.0.0/0"}}})
	c := r.httpClient("agent", false)

	t.Run("allowed host", func(t *testing.T) {
		status, _, body := do(t, c, requestWithToken(t, "api.anthropic.com", anth.Hosts[0].Auth, env["ANTHROPIC_API_KEY"]))
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		reqs := r.up.requests()
		if len(reqs) != 1 || len(occurrences(reqs[0], realAnthropic)) != 1 {
			t.Errorf("upstream got %d requests, want 1 with the real value", len(reqs))
		}
	})
	// Denied hosts are refused on the CONNECT, by name: nothing is
	// resolved (no DNS side channel) and nothing is dialed.
	for _, target := range []string{"b.test:443", "c.test:443", "evil.example:443"} {
		t.Run("CONNECT "+target, func(t *testing.T) {
			assertConnectDenied(t, r, "agent", target)
		})
	}
	t.Run("denied host over plain HTTP", func(t *testing.T) {
		status, h, body := do(t, c, newReq(t, http.MethodGet, "http://b.test/v1/things", nil))
		assertRefused(t, status, h, body, refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied})
	})
	assertUpstreamUntouched(t, r, 1)
	if got, want := dials.tried(), []string{r.up.addr.String()}; !cmp.Equal(got, want) {
		t.Errorf("gateway dialed %v, want only the allowed host's %v", got, want)
	}
}

// TestAttackRebinding: names that resolve to loopback, private, link-local
// (metadata) or IPv6 loopback addresses are refused at dial time with the
// dialer's reason, whichever way the sandbox reaches them, unless an
// allowOut CIDR covers the address.
func TestAttackRebinding(t *testing.T) {
	r := newRig(t)
	dials := hookDials(t, r)
	var hits sync.Map // path -> true, on the local listener
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Store(req.URL.Path, true)
		io.WriteString(w, "local listener")
	}))
	t.Cleanup(local.Close)
	port := strconv.Itoa(local.Listener.Addr().(*net.TCPAddr).Port)

	tests := []struct{ name, host, addr, reason string }{
		{name: "loopback", host: "loop.test", addr: "127.0.0.1", reason: ReasonSpecial},
		{name: "private", host: "private.test", addr: "10.0.0.1", reason: ReasonSpecial},
		{name: "metadata", host: "meta.test", addr: "169.254.169.254", reason: ReasonSpecial},
		{name: "IPv6 loopback", host: "v6loop.test", addr: "::1", reason: ReasonSpecial},
	}
	var names []string
	for _, tt := range tests {
		r.resolver.set(tt.host, tt.addr)
		names = append(names, tt.host)
	}
	// agent has a secret on every name, so its TLS flows are intercepted
	// and carry a swapped credential; plain has none, so they are spliced.
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn(names...)})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	r.sandbox(client.SandboxCreate{Name: "plain"})
	r.sandbox(client.SandboxCreate{Name: "local", Network: client.NetworkRules{AllowOut: []string{"127.0.0.0/8"}}})
	c := r.httpClient("agent", false)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := refusal{http.StatusForbidden, CodeBlocked, tt.reason}
			t.Run("plain HTTP", func(t *testing.T) {
				status, h, body := do(t, c, newReq(t, http.MethodGet, "http://"+tt.host+":"+port+"/plain", nil))
				assertRefused(t, status, h, body, want)
			})
			t.Run("intercepted with credential", func(t *testing.T) {
				req := newReq(t, http.MethodGet, "https://"+tt.host+":"+port+"/tls", nil)
				req.Header.Set("Authorization", "Bearer "+si)
				status, h, body := do(t, c, req)
				assertRefused(t, status, h, body, want)
			})
			t.Run("spliced", func(t *testing.T) {
				n := len(flowRefusals(r))
				_, err := tunnelTLS(t, r, "plain", tt.host+":"+port, &tls.Config{ServerName: tt.host, InsecureSkipVerify: true})
				if err == nil {
					t.Errorf("TLS to %s through the gateway succeeded, want the flow closed", tt.host)
				}
				assertFlowRefused(t, r, n, ReasonUpstream)
			})
		})
	}

	// Literal addresses are judged by the rules before any dial.
	t.Run("IP literal CONNECT", func(t *testing.T) {
		for _, target := range []string{"10.0.0.1:443", "169.254.169.254:443", "[::1]:443", "127.0.0.1:" + port} {
			// Refused on the CONNECT itself, before any tunnel exists.
			assertConnectDenied(t, r, "plain", target)
		}
	})
	t.Run("IP literal plain HTTP", func(t *testing.T) {
		for _, u := range []string{"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:" + port + "/literal"} {
			status, h, body := do(t, c, newReq(t, http.MethodGet, u, nil))
			assertRefused(t, status, h, body, refusal{http.StatusForbidden, CodeBlocked, ReasonRuleDenied})
		}
	})
	hits.Range(func(k, _ any) bool {
		t.Errorf("local listener got %v", k)
		return true
	})
	assertNoDials(t, dials)

	// The same name, allowed by an allowOut CIDR, reaches the listener.
	t.Run("allowed by CIDR", func(t *testing.T) {
		status, _, body := do(t, r.httpClient("local", false), newReq(t, http.MethodGet, "http://loop.test:"+port+"/allowed", nil))
		if status != http.StatusOK || string(body) != "local listener" {
			t.Errorf("GET http://loop.test:%s/allowed = %d %q, want 200 from the local listener", port, status, body)
		}
		if got, want := dials.tried(), []string{"127.0.0.1:" + port}; !cmp.Equal(got, want) {
			t.Errorf("gateway dialed %v, want %v", got, want)
		}
	})
	assertUpstreamUntouched(t, r, 0)
}

// TestAttackSwapLocation: the real value is written into the secret's auth
// slot for the host and nowhere else. A stand-in anywhere else, on another
// host, or in another secret's slot never becomes the real value.
func TestAttackSwapLocation(t *testing.T) {
	r := newRig(t, "a.test", "b.test", "c.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: []client.HostAuth{
		{Host: "a.test", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "X-Api-Key", Template: "{value}"}}}})
	r.secret(client.SecretCreate{Name: "sb", Value: realB, Hosts: bearerOn("b.test")})
	secrets := map[string]string{"A_KEY": "sa", "B_KEY": "sb"}
	env := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: secrets})
	r.sandbox(client.SandboxCreate{Name: "inspected", Secrets: secrets, Network: client.NetworkRules{Inspect: "all"}})
	siA, siB := env["A_KEY"], env["B_KEY"]
	c := r.httpClient("agent", false)

	// Places a stand-in can be put on a.test besides its slot.
	elsewhere := []struct {
		name  string
		slot  bool // also in X-Api-Key
		req   func(t *testing.T) *http.Request
		where string // where the stand-in must arrive (occurrences)
	}{
		{name: "body", req: func(t *testing.T) *http.Request {
			return newReq(t, http.MethodPost, "https://a.test/v1/things", strings.NewReader("key="+siA))
		}, where: "body"},
		{name: "another header", req: func(t *testing.T) *http.Request {
			req := newReq(t, http.MethodGet, "https://a.test/v1/things", nil)
			req.Header.Set("X-Other", siA)
			return req
		}, where: "header X-Other"},
		{name: "Authorization header", req: func(t *testing.T) *http.Request {
			req := newReq(t, http.MethodGet, "https://a.test/v1/things", nil)
			req.Header.Set("Authorization", "Bearer "+siA)
			return req
		}, where: "header Authorization"},
		{name: "query", req: func(t *testing.T) *http.Request {
			return newReq(t, http.MethodGet, "https://a.test/v1/things?api_key="+url.QueryEscape(siA), nil)
		}, where: "query"},
		{name: "path", req: func(t *testing.T) *http.Request {
			return newReq(t, http.MethodGet, "https://a.test/v1/"+siA, nil)
		}, where: "path"},
	}
	for _, tt := range elsewhere {
		for _, slot := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/slot=%v", tt.name, slot), func(t *testing.T) {
				req := tt.req(t)
				wantReal := []string(nil)
				if slot {
					req.Header.Set("X-Api-Key", siA)
					wantReal = []string{"header X-Api-Key"}
				}
				status, _, body := do(t, c, req)
				if status != http.StatusOK {
					t.Fatalf("status %d: %s", status, body)
				}
				reqs := r.up.requests()
				got := reqs[len(reqs)-1]
				if w := occurrences(got, realA); !cmp.Equal(w, wantReal) {
					t.Errorf("real value arrived in %v, want %v", w, wantReal)
				}
				if w := occurrences(got, siA); !slices.Contains(w, tt.where) {
					t.Errorf("stand-in arrived in %v, want it left as it is in %s", w, tt.where)
				}
			})
		}
	}

	t.Run("stand-in of A in the slot of B", func(t *testing.T) {
		before := len(r.up.requests())
		req := newReq(t, http.MethodGet, "https://b.test/v1/things", nil)
		req.Header.Set("Authorization", "Bearer "+siA)
		status, h, body := do(t, c, req)
		assertRefused(t, status, h, body, refusal{http.StatusForbidden, CodeRevoked, ReasonRevoked})
		assertUpstreamUntouched(t, r, before)
	})
	t.Run("stand-in of B in the slot of A", func(t *testing.T) {
		before := len(r.up.requests())
		req := newReq(t, http.MethodGet, "https://a.test/v1/things", nil)
		req.Header.Set("X-Api-Key", siB)
		status, h, body := do(t, c, req)
		assertRefused(t, status, h, body, refusal{http.StatusForbidden, CodeRevoked, ReasonRevoked})
		assertUpstreamUntouched(t, r, before)
	})

	// c.test has no secret: spliced for agent, intercepted for inspected.
	// Either way the stand-in arrives as it is.
	for _, sb := range []string{"agent", "inspected"} {
		t.Run("host without a secret/"+sb, func(t *testing.T) {
			roots := r.up.roots // spliced: the sandbox talks TLS with the upstream itself
			if sb == "inspected" {
				roots = r.caPool
			}
			tc, err := tunnelTLS(t, r, sb, "c.test:443", &tls.Config{ServerName: "c.test", RootCAs: roots, NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatalf("TLS to c.test: %v", err)
			}
			raw := exchange(t, tc, "GET /v1/things?key="+url.QueryEscape(siA)+" HTTP/1.1\r\nHost: c.test\r\nAuthorization: Bearer "+siA+
				"\r\nX-Api-Key: "+siA+"\r\nConnection: close\r\n\r\n")
			if rs := parseResponses(t, raw); len(rs) != 1 || rs[0].status != http.StatusOK {
				t.Fatalf("got %v, want one 200", statuses(rs))
			}
			reqs := r.up.requests()
			got := reqs[len(reqs)-1]
			if got.Host != "c.test" {
				t.Fatalf("last upstream request for %q, want c.test", got.Host)
			}
			for _, real := range []string{realA, realB} {
				if w := occurrences(got, real); len(w) != 0 {
					t.Errorf("real value reached c.test in %v", w)
				}
			}
			if w := occurrences(got, siA); len(w) != 3 {
				t.Errorf("stand-in arrived in %v, want Authorization, X-Api-Key and query", w)
			}
		})
	}

	// a.test redirects to c.test; the sandbox follows and, like curl
	// --location-trusted, sends its credential header along.
	t.Run("redirect to another host", func(t *testing.T) {
		r.up.handle(func(w http.ResponseWriter, req *http.Request) {
			if req.Host == "a.test" {
				http.Redirect(w, req, "https://c.test/landing", http.StatusFound)
				return
			}
			io.WriteString(w, "landed")
		})
		t.Cleanup(func() { r.up.handle(nil) })
		roots := r.caPool.Clone()
		roots.AddCert(upstreamCA(t, r))
		tr := &http.Transport{Proxy: http.ProxyURL(r.proxyURL("agent")), TLSClientConfig: &tls.Config{RootCAs: roots}}
		t.Cleanup(tr.CloseIdleConnections)
		follow := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			req.Header.Set("X-Api-Key", via[0].Header.Get("X-Api-Key"))
			req.Header.Set("Authorization", via[0].Header.Get("Authorization"))
			return nil
		}}
		before := len(r.up.requests())
		req := newReq(t, http.MethodGet, "https://a.test/start", nil)
		req.Header.Set("X-Api-Key", siA)
		req.Header.Set("Authorization", "Bearer "+siB)
		status, _, body := do(t, follow, req)
		if status != http.StatusOK || string(body) != "landed" {
			t.Fatalf("got %d %q, want 200 landed", status, body)
		}
		reqs := r.up.requests()[before:]
		if len(reqs) != 2 || reqs[0].Host != "a.test" || reqs[1].Host != "c.test" {
			t.Fatalf("upstream got %d requests, want a.test then c.test", len(reqs))
		}
		if w := occurrences(reqs[0], realA); len(w) != 1 {
			t.Errorf("first request: real value in %v, want the X-Api-Key slot", w)
		}
		for _, real := range []string{realA, realB} {
			if w := occurrences(reqs[1], real); len(w) != 0 {
				t.Errorf("redirected request: real value in %v, want nowhere", w)
			}
		}
	})
	dials.onlyUpstream(t, r)
}

// upstreamCA returns the certificate that signed the rig's upstream.
func upstreamCA(tb testing.TB, r *rig) *x509.Certificate {
	tb.Helper()
	leaf := r.up.cert.Certificate[0]
	c, err := x509.ParseCertificate(leaf)
	if err != nil {
		tb.Fatal(err)
	}
	chains, err := c.Verify(x509.VerifyOptions{Roots: r.up.roots, DNSName: "upstream.test"})
	if err != nil {
		tb.Fatal(err)
	}
	return chains[0][len(chains[0])-1]
}

// agentRig is a rig routing a.test to its upstream, with every dial
// logged, and secret sa (realA, bearer on a.test) bound to sandbox agent
// as A_KEY; it returns the stand-in.
func agentRig(t *testing.T) (*rig, *dialLog, string) {
	t.Helper()
	r := newRig(t, "a.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]
	return r, dials, si
}

func bearerReq(t *testing.T, u, tok string) *http.Request {
	t.Helper()
	req := newReq(t, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

// rawGet is a keep-alive GET for a.test carrying tok, for raw connections.
func rawGet(path, tok string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
}

// roundTripRaw writes one request on a kept-alive connection and reads its
// response.
func roundTripRaw(t *testing.T, c net.Conn, br *bufio.Reader, raw string) rawResponse {
	t.Helper()
	c.SetDeadline(time.Now().Add(rawDeadline))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestAttackLifecycle: a detach, delete or rotation takes effect on the very
// next request, on new and already open connections.
func TestAttackLifecycle(t *testing.T) {
	ctx := context.Background()
	revoked := refusal{http.StatusForbidden, CodeRevoked, ReasonRevoked}

	revocations := []struct {
		name   string
		revoke func(t *testing.T, r *rig)
		want   refusal // on an open connection
		fresh  int     // status on a new connection
	}{
		{name: "detach", revoke: func(t *testing.T, r *rig) {
			if err := r.api.Detach(ctx, "agent", "A_KEY"); err != nil {
				t.Fatal(err)
			}
		}, want: revoked, fresh: http.StatusForbidden},
		{name: "delete secret", revoke: func(t *testing.T, r *rig) {
			if err := r.api.DeleteSecret(ctx, "sa"); err != nil {
				t.Fatal(err)
			}
		}, want: revoked, fresh: http.StatusForbidden},
		{name: "delete sandbox", revoke: func(t *testing.T, r *rig) {
			if err := r.api.DeleteSandbox(ctx, "agent"); err != nil {
				t.Fatal(err)
			}
		}, want: refusal{http.StatusForbidden, CodeBlocked, ReasonUnknownSB}, fresh: http.StatusProxyAuthRequired},
	}
	for _, tt := range revocations {
		t.Run(tt.name, func(t *testing.T) {
			r, dials, si := agentRig(t)
			auth := proxyAuth(t, r, "agent")
			open := sandboxTLS(t, r, "agent", "a.test")
			br := bufio.NewReader(open)
			if got := roundTripRaw(t, open, br, rawGet("/before", si)); got.status != http.StatusOK {
				t.Fatalf("before revocation: status %d: %s", got.status, got.body)
			}
			tt.revoke(t, r)
			got := roundTripRaw(t, open, br, rawGet("/after-open", si))
			assertRefused(t, got.status, got.header, got.body, tt.want)

			// A new connection: a sandbox gone cannot even open a tunnel.
			c, resp := connectTunnel(t, r, auth, "a.test:443")
			if resp.StatusCode == http.StatusOK {
				tc := tls.Client(c, &tls.Config{ServerName: "a.test", RootCAs: r.caPool, NextProtos: []string{"http/1.1"}})
				last := "GET /after-new HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer " + si + "\r\nConnection: close\r\n\r\n"
				if rs := parseResponses(t, exchange(t, tc, last)); len(rs) != 1 || rs[0].status != tt.fresh {
					t.Errorf("new connection after %s: %v, want %d", tt.name, statuses(rs), tt.fresh)
				} else if tt.fresh == http.StatusForbidden {
					assertRefused(t, rs[0].status, rs[0].header, rs[0].body, tt.want)
				}
			} else if resp.StatusCode != tt.fresh {
				t.Errorf("CONNECT after %s: status %d, want %d", tt.name, resp.StatusCode, tt.fresh)
			}
			reqs := r.up.requests()
			if len(reqs) != 1 || reqs[0].Path != "/before" {
				t.Errorf("upstream got %d requests, want only /before", len(reqs))
			}
			if got := len(dials.tried()); got != 1 {
				t.Errorf("gateway dialed %d times, want 1 (before the revocation)", got)
			}
		})
	}

	t.Run("rotate", func(t *testing.T) {
		r, _, si := agentRig(t)
		const rotated = "sk-live-ROTATEDVALUE-9999999999999999"
		open := sandboxTLS(t, r, "agent", "a.test")
		br := bufio.NewReader(open)
		if got := roundTripRaw(t, open, br, rawGet("/before", si)); got.status != http.StatusOK {
			t.Fatalf("before rotation: status %d: %s", got.status, got.body)
		}
		if _, err := r.api.RotateSecret(ctx, "sa", rotated); err != nil {
			t.Fatal(err)
		}
		if got := roundTripRaw(t, open, br, rawGet("/after-open", si)); got.status != http.StatusOK {
			t.Fatalf("open connection after rotation: status %d: %s", got.status, got.body)
		}
		if status, _, body := do(t, r.httpClient("agent", true), bearerReq(t, "https://a.test/after-new", si)); status != http.StatusOK {
			t.Fatalf("new connection after rotation: status %d: %s", status, body)
		}
		reqs := r.up.requests()
		if len(reqs) != 3 {
			t.Fatalf("upstream got %d requests, want 3", len(reqs))
		}
		if w := occurrences(reqs[0], realA); len(w) != 1 {
			t.Errorf("before rotation: old value in %v, want the slot", w)
		}
		for _, s := range reqs[1:] {
			if got := s.Header.Get("Authorization"); got != "Bearer "+rotated {
				t.Errorf("%s after rotation: Authorization %q, want the new value", s.Path, got)
			}
			if w := occurrences(s, realA); len(w) != 0 {
				t.Errorf("%s after rotation: old value in %v", s.Path, w)
			}
		}
	})

	// Revoked while a streamed response is open: the stream is cut before
	// the API answers (the upstream sees its request end), its record
	// says why, and nothing new goes out, on that connection or another.
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("detach during a stream/h2=%v", h2), func(t *testing.T) {
			r, _, si := agentRig(t)
			ended := make(chan struct{})
			r.up.handle(func(w http.ResponseWriter, req *http.Request) {
				if req.URL.Path != "/stream" {
					io.WriteString(w, "ok")
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: one\n\n")
				w.(http.Flusher).Flush()
				<-req.Context().Done()
				close(ended)
			})
			c := r.httpClient("agent", h2)
			resp, err := c.Do(bearerReq(t, "https://a.test/stream", si))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
				t.Fatalf("first event %q, %v", line, err)
			}
			if err := r.api.Detach(ctx, "agent", "A_KEY"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ended:
			case <-time.After(handshakeGuard):
				t.Fatalf("the upstream's stream still open %v after the detach", handshakeGuard)
			}
			if rest, err := io.ReadAll(br); err == nil {
				t.Errorf("rest of the stream %q ended cleanly, want it cut", rest)
			}
			resp.Body.Close()
			// HTTP/2: the stream was reset, its connection goes on. HTTP/1.1:
			// the connection ended with the response.
			assertReusedRefused(t, c, si, h2, revoked)
			assertReusedRefused(t, r.httpClient("agent", h2), si, false, revoked)
			if reqs := r.up.requests(); len(reqs) != 1 {
				t.Errorf("upstream got %d requests, want only the stream", len(reqs))
			}
			r.waitLogLines("proxied request", 1, func(l map[string]any) bool { return l["path"] == "/stream" })
			var reasons []string
			for _, a := range r.activity("sa") {
				if a.Path == "/stream" {
					reasons = append(reasons, a.Reason)
				}
			}
			if len(reasons) != 1 || reasons[0] != ReasonCutRevoked {
				t.Errorf("the stream's records have reasons %q, want [%q]", reasons, ReasonCutRevoked)
			}
		})
	}
}

// assertReusedRefused sends a request with tok through c, checks whether it
// went on a reused connection, and that it was refused.
func assertReusedRefused(t *testing.T, c *http.Client, tok string, reused bool, want refusal) {
	t.Helper()
	var got bool
	req := bearerReq(t, "https://a.test/after", tok)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) { got = ci.Reused },
	}))
	status, h, body := do(t, c, req)
	if got != reused {
		t.Errorf("connection reused = %v, want %v", got, reused)
	}
	assertRefused(t, status, h, body, want)
}

// TestAttackFailClosed: when the value cannot be unsealed or the store
// cannot be read, the request is refused; nothing goes out with the
// stand-in in place of the value.
func TestAttackFailClosed(t *testing.T) {
	ctx := context.Background()
	unavailable := refusal{http.StatusServiceUnavailable, CodeUnavailable, ReasonUnavailable}

	t.Run("corrupt sealed value", func(t *testing.T) {
		r, dials, si := agentRig(t)
		sec, err := r.store.GetSecret(ctx, "sa")
		if err != nil {
			t.Fatal(err)
		}
		sec.Sealed[len(sec.Sealed)-1] ^= 1
		sec.Version++
		if err := r.store.RotateSecret(ctx, sec); err != nil {
			t.Fatal(err)
		}
		r.gw.Invalidate()
		c := r.httpClient("agent", false)
		// With the stand-in, and without it: the value is needed to scrub
		// the response too.
		for _, req := range []*http.Request{bearerReq(t, "https://a.test/v1", si), newReq(t, http.MethodGet, "https://a.test/v1", nil)} {
			status, h, body := do(t, c, req)
			assertRefused(t, status, h, body, unavailable)
		}
		assertUpstreamUntouched(t, r, 0)
		assertNoDials(t, dials)
	})

	t.Run("vault with another master key", func(t *testing.T) {
		r, dials, si := agentRig(t)
		key := make([]byte, 32)
		rand.Read(key)
		kr, err := vault.NewKeyring(key)
		if err != nil {
			t.Fatal(err)
		}
		_, proxy := serveProxy(t, ctx, Config{Store: r.store, Vault: vault.New(kr, nil), Minter: r.minter, CA: r.gw.CA(),
			Dialer:        &Dialer{Overrides: r.gw.cfg.Dialer.Overrides, Guard: guard127, Resolver: r.resolver, dialFunc: dials.loopbackOnly(t)},
			UpstreamRoots: r.up.roots, Logger: r.gw.logger})
		pu := r.proxyURL("agent")
		pu.Host = proxy
		tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: r.caPool}}
		t.Cleanup(tr.CloseIdleConnections)
		status, h, body := do(t, &http.Client{Transport: tr}, bearerReq(t, "https://a.test/v1", si))
		assertRefused(t, status, h, body, unavailable)
		assertUpstreamUntouched(t, r, 0)
		assertNoDials(t, dials)
	})

	t.Run("store closed", func(t *testing.T) {
		r, dials, si := agentRig(t)
		auth := proxyAuth(t, r, "agent")
		open := sandboxTLS(t, r, "agent", "a.test")
		br := bufio.NewReader(open)
		if got := roundTripRaw(t, open, br, rawGet("/before", si)); got.status != http.StatusOK {
			t.Fatalf("before: status %d: %s", got.status, got.body)
		}
		r.store.Close()
		r.gw.Invalidate()
		got := roundTripRaw(t, open, br, rawGet("/open", si))
		assertRefused(t, got.status, got.header, got.body, unavailable)
		// A new connection: the proxy cannot check the sandbox either.
		c, resp := connectTunnel(t, r, auth, "a.test:443")
		body, _ := io.ReadAll(resp.Body)
		assertRefused(t, resp.StatusCode, resp.Header, body, unavailable)
		c.Close()
		if reqs := r.up.requests(); len(reqs) != 1 {
			t.Errorf("upstream got %d requests, want only the one before", len(reqs))
		}
		if got := len(dials.tried()); got != 1 {
			t.Errorf("gateway dialed %d times, want 1", got)
		}
	})
}

// realForms are the encodings of v a reflected value could take that the
// gateway scrubs: raw, URL-encoded, and the base64 cores at each alignment.
func realForms(v string) map[string]string {
	forms := map[string]string{"raw": v, "query-escaped": url.QueryEscape(v), "path-escaped": url.PathEscape(v)}
	for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
		for k := range 3 {
			if c := base64Core(enc, k, []byte(v)); len(c) >= minCore {
				forms[fmt.Sprintf("base64 %s at %d", name, k)] = string(c)
			}
		}
	}
	return forms
}

// assertNoRealForm fails if data holds any form of v.
func assertNoRealForm(tb testing.TB, v, where string, data []byte) {
	tb.Helper()
	for name, f := range realForms(v) {
		if bytes.Contains(data, []byte(f)) {
			tb.Errorf("real value (%s) reached the sandbox in %s", name, where)
		}
	}
}

// TestAttackReflection: the upstream echoes the credential it received in
// every way it can; the sandbox's raw bytes never hold the real value.
func TestAttackReflection(t *testing.T) {
	r, _, si := agentRig(t)

	value := func(req *http.Request) string { return strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ") }
	tests := []struct {
		name string
		h    http.HandlerFunc
		// the stand-in's form expected in its place (the echo happened)
		want string
	}{
		{name: "body", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, "you sent "+req.Header.Get("Authorization"))
		}},
		{name: "error body", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid key %s"}`, value(req))
		}},
		{name: "response header", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Echo", req.Header.Get("Authorization"))
		}},
		{name: "Location", want: url.QueryEscape(si), h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Location", "https://c.test/cb?key="+url.QueryEscape(value(req))+"&raw="+value(req))
			w.WriteHeader(http.StatusFound)
		}},
		{name: "Set-Cookie", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Add("Set-Cookie", "session="+value(req)+"; Path=/")
		}},
		{name: "base64", h: func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, base64.StdEncoding.EncodeToString([]byte(req.Header.Get("Authorization")))+"\n")
			io.WriteString(w, base64.URLEncoding.EncodeToString([]byte(req.Header.Get("Authorization")))+"\n")
			for k := range 3 {
				io.WriteString(w, base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", k)+value(req)))+"\n")
				io.WriteString(w, base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", k)+value(req)))+"\n")
			}
		}},
		{name: "URL-encoded", want: url.QueryEscape(si), h: func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, url.QueryEscape(value(req))+"\n"+url.PathEscape(value(req)))
		}},
		{name: "one byte per flushed chunk", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			for _, b := range []byte("key=" + value(req) + ";") {
				w.Write([]byte{b})
				w.(http.Flusher).Flush()
			}
		}},
		{name: "trailer", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Trailer", "X-Echo")
			io.WriteString(w, "body first")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Echo", value(req))
		}},
		{name: "undeclared trailer", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			io.WriteString(w, "body first")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Late", value(req))
		}},
		{name: "informational response", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Link", "</x?k="+value(req)+">; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "ok")
		}},
		// The sandbox asks for gzip; the gateway asks the upstream for
		// identity, since the scrubber cannot see inside a compressed body.
		{name: "gzip when asked", want: si, h: func(w http.ResponseWriter, req *http.Request) {
			if !strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
				io.WriteString(w, "plain "+value(req))
				return
			}
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			io.WriteString(gz, "compressed "+value(req))
			gz.Close()
		}},
		// An upstream that compresses unasked gets its response refused.
		{name: "gzip unasked", want: ReasonEncoded, h: func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			io.WriteString(gz, "compressed "+value(req))
			gz.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.up.handle(tt.h)
			t.Cleanup(func() { r.up.handle(nil) })
			before := len(r.up.requests())
			raw := exchange(t, sandboxTLS(t, r, "agent", "a.test"), "GET /echo HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer "+si+
				"\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
			reqs := r.up.requests()
			if len(reqs) != before+1 || reqs[before].Header.Get("Authorization") != "Bearer "+realA {
				t.Fatalf("upstream did not get the real value to echo")
			}
			assertNoRealForm(t, realA, "raw bytes", raw)
			var decoded []byte
			for _, resp := range parseResponses(t, raw) {
				body := resp.body
				if resp.header.Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					if body, err = io.ReadAll(zr); err != nil {
						t.Fatal(err)
					}
				}
				var hb bytes.Buffer
				resp.header.Write(&hb)
				resp.trailer.Write(&hb)
				decoded = append(append(decoded, hb.Bytes()...), body...)
			}
			assertNoRealForm(t, realA, "decoded responses", decoded)
			if tt.want != "" && !bytes.Contains(decoded, []byte(tt.want)) {
				t.Errorf("stand-in (%q) not in the response: %q", tt.want, decoded)
			}
		})
	}
}

// TestAttackSmuggling: framing tricks on an intercepted connection. Go's
// server reads each request once, and whatever it makes of the bytes, every
// request it sees is checked on its own: a smuggled request never reaches
// another host and never gets a real value. The statuses record what Go's
// server does: with both Content-Length and Transfer-Encoding it uses the
// chunked framing (RFC 9112 section 6.3), so bytes after the chunked body
// are the next request, which is then refused (421) like any other.
func TestAttackSmuggling(t *testing.T) {
	r := newRig(t, "a.test", "b.test")
	dials := hookDials(t, r)
	r.secret(client.SecretCreate{Name: "sa", Value: realA, Hosts: bearerOn("a.test")})
	si := r.sandbox(client.SandboxCreate{Name: "agent", Secrets: map[string]string{"A_KEY": "sa"}})["A_KEY"]

	first := "POST /first HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer " + si + "\r\n"
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: b.test\r\nAuthorization: Bearer " + si + "\r\n\r\n"
	// last ends every stream, so that Go's server closes the connection.
	const last = "GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
	cl := func(s string) string { return "Content-Length: " + strconv.Itoa(len(s)) + "\r\n" }
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	pad := strings.Repeat("x", 40)

	tests := []struct {
		name  string
		raw   string
		want  []int    // statuses the sandbox gets, in order
		paths []string // paths the upstream gets, in order
		body  string   // what the upstream got as the body of /first
	}{
		{name: "pipelined, second for another host",
			raw:  first + "\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}},
		{name: "CL.TE: Content-Length covers the smuggled request",
			raw:  first + cl("0\r\n\r\n"+smuggled) + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}},
		{name: "TE.CL: Content-Length ends inside the chunked body",
			raw:  first + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunk(pad) + "0\r\n\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}, body: pad},
		{name: "obfuscated Transfer-Encoding",
			raw:  first + cl(smuggled) + "Transfer-Encoding: xchunked\r\n\r\n" + smuggled + last,
			want: []int{501}},
		{name: "space before colon",
			raw:  first + "Transfer-Encoding : chunked\r\n" + cl(smuggled) + "\r\n" + smuggled + last,
			want: []int{400}},
		{name: "two different Content-Lengths",
			raw:  first + "Content-Length: 0\r\n" + cl(smuggled) + "\r\n" + smuggled + last,
			want: []int{400}},
		{name: "two Host headers",
			raw:  first + "Host: b.test\r\nContent-Length: 0\r\n\r\n" + last,
			want: []int{400}},
		{name: "body holding a request",
			raw:  first + cl(smuggled) + "\r\n" + smuggled + last,
			want: []int{200, 200}, paths: []string{"/first", "/last"}, body: smuggled},
		{name: "chunked body holding a request",
			raw:  first + "Transfer-Encoding: chunked\r\n\r\n" + chunk(smuggled) + "0\r\n\r\n" + last,
			want: []int{200, 200}, paths: []string{"/first", "/last"}, body: smuggled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(r.up.requests())
			raw := exchange(t, sandboxTLS(t, r, "agent", "a.test"), tt.raw)
			if got := statuses(parseResponses(t, raw)); !cmp.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			var paths []string
			for _, s := range r.up.requests()[before:] {
				paths = append(paths, s.Path)
				if s.Host != "a.test" {
					t.Errorf("upstream got %s for Host %q", s.Path, s.Host)
				}
				switch s.Path {
				case "/first":
					if w := occurrences(s, realA); !cmp.Equal(w, []string{"header Authorization"}) {
						t.Errorf("/first: real value in %v, want its slot only", w)
					}
					if string(s.Body) != tt.body {
						t.Errorf("/first: upstream got body %q, want %q", s.Body, tt.body)
					}
				default:
					if w := occurrences(s, realA); len(w) != 0 {
						t.Errorf("%s: real value in %v", s.Path, w)
					}
				}
			}
			if !cmp.Equal(paths, tt.paths) {
				t.Errorf("upstream paths %v, want %v", paths, tt.paths)
			}
			assertNoRealForm(t, realA, "raw bytes", raw)
		})
	}
	dials.onlyUpstream(t, r)
}

// TestAttackProxyAuth: the explicit proxy serves nobody it cannot name.
func TestAttackProxyAuth(t *testing.T) {
	r, dials, si := agentRig(t)
	r.sandbox(client.SandboxCreate{Name: "other"})
	tokA := r.minter.ProxyToken(mustSandboxID(t, r, "agent"))
	tokB := r.minter.ProxyToken(mustSandboxID(t, r, "other"))

	tests := []struct{ name, auth string }{
		{name: "none", auth: ""},
		{name: "wrong token", auth: basicAuth("agent", "not-the-token")},
		{name: "empty token", auth: basicAuth("agent", "")},
		{name: "token of A with name of B", auth: basicAuth("other", tokA)},
		{name: "token of B with name of A", auth: basicAuth("agent", tokB)},
		{name: "token with a suffix", auth: basicAuth("agent", tokA+"x")},
		{name: "token without a name", auth: basicAuth("", tokA)},
		{name: "sandbox id as name", auth: basicAuth(mustSandboxID(t, r, "agent"), tokA)},
		{name: "no colon", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("agent"+tokA))},
		{name: "bearer scheme", auth: "Bearer " + tokA},
		{name: "bad base64", auth: "Basic !!!" + tokA},
		{name: "unknown sandbox", auth: basicAuth("nobody", tokA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp := connectTunnel(t, r, tt.auth, "a.test:443")
			body, _ := io.ReadAll(resp.Body)
			c.Close()
			assertProxyAuthRequired(t, "CONNECT", resp.StatusCode, resp.Header, body)

			// Absolute-form plain HTTP.
			pc, err := net.Dial("tcp", r.proxy)
			if err != nil {
				t.Fatal(err)
			}
			req := "GET http://a.test/v1 HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer " + si + "\r\nConnection: close\r\n"
			if tt.auth != "" {
				req += "Proxy-Authorization: " + tt.auth + "\r\n"
			}
			rs := parseResponses(t, exchange(t, pc, req+"\r\n"))
			pc.Close()
			if len(rs) != 1 {
				t.Fatalf("got %d responses, want 1", len(rs))
			}
			assertProxyAuthRequired(t, "GET", rs[0].status, rs[0].header, rs[0].body)
		})
	}
	// The right credential gets through: the cases above fail for the
	// credential alone.
	c, resp := connectTunnel(t, r, basicAuth("agent", tokA), "a.test:443")
	c.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("CONNECT with the right credential: status %d, want 200", resp.StatusCode)
	}
	assertUpstreamUntouched(t, r, 0)
	assertNoDials(t, dials)
}

func assertProxyAuthRequired(t *testing.T, what string, status int, h http.Header, body []byte) {
	t.Helper()
	code, _ := refusalOf(body)
	if status != http.StatusProxyAuthRequired || code != "proxy_auth_required" {
		t.Errorf("%s: got %d %q, want 407 proxy_auth_required", what, status, code)
	}
	if got := h.Get("Proxy-Authenticate"); got != `Basic realm="standin"` {
		t.Errorf("%s: Proxy-Authenticate = %q, want Basic realm", what, got)
	}
}

func mustSandboxID(t *testing.T, r *rig, name string) string {
	t.Helper()
	sb, err := r.api.GetSandbox(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sb.ID
}
