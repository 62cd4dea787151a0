package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/testutil"
)

// logLines returns the rig's JSON log lines whose message is msg.
func (r *rig) logLines(msg string) []map[string]any {
	r.t.Helper()
	var out []map[string]any
	for line := range strings.Lines(r.logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			r.t.Fatalf("log line is not JSON: %v", err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLogLines waits until the rig logged n lines with message msg for
// which match is true, and returns them. The canonical line of a request is
// written (and its activity recorded) after the sandbox got the whole
// response, so a test that just read a response waits for it.
func (r *rig) waitLogLines(msg string, n int, match func(map[string]any) bool) []map[string]any {
	r.t.Helper()
	deadline := time.Now().Add(handshakeGuard)
	for {
		var got []map[string]any
		for _, l := range r.logLines(msg) {
			if match == nil || match(l) {
				got = append(got, l)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sandboxID returns the id of the sandbox named name.
func (r *rig) sandboxID(name string) string {
	r.t.Helper()
	sb, err := r.api.GetSandbox(context.Background(), name)
	if err != nil {
		r.t.Fatal(err)
	}
	return sb.ID
}

// handOver gives HandleConn the server end of a loopback TCP connection,
// as the sandbox runtime does, and returns the sandbox's end and a channel
// closed when HandleConn returns.
func (r *rig) handOver(tb testing.TB, m ConnMeta) (net.Conn, <-chan struct{}) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.gw.HandleConn(context.Background(), srv, m)
	}()
	return c, done
}

// roundTrip writes req on c and reads the answer.
func roundTrip(tb testing.TB, c net.Conn, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	c.SetDeadline(time.Now().Add(handshakeGuard))
	if err := req.Write(c); err != nil {
		tb.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return resp, b
}

// echoServer is a TCP server on loopback that echoes what it reads.
func echoServer(tb testing.TB) netip.AddrPort {
	tb.Helper()
	l := testutil.ServeTCP(tb, func(c net.Conn) { io.Copy(c, c) })
	return netip.MustParseAddrPort(l.Addr().String())
}

// TestHandleConn drives entry point (b): connections the sandbox runtime
// hands over with the destination it saw.
func TestHandleConn(t *testing.T) {
	const real = "sk-conn-REALVALUE-0123456789abcdef"
	rig := newRig(t, "api.conn.test", "other.conn.test")
	// Set before any traffic, so no gateway goroutine reads the map
	// while it changes.
	rig.gw.cfg.Dialer.Overrides["echo.test"] = []netip.AddrPort{echoServer(t)}
	rig.secret(client.SecretCreate{Name: "conn", Value: real, Hosts: []client.HostAuth{
		{Host: "api.conn.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	tok := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"TOKEN": "conn"}})["TOKEN"]
	sbID := rig.sandboxID("sb")
	// The address the sandbox connected to is never dialed for a named
	// flow; nothing listens there.
	dst := netip.MustParseAddrPort("127.0.0.2:443")

	swapped := func(t *testing.T, m ConnMeta, sni string) {
		t.Helper()
		c, _ := rig.handOver(t, m)
		tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: rig.caPool, NextProtos: []string{"http/1.1"}})
		req := newReq(t, http.MethodGet, "https://"+sni+"/v1/things", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		before := len(rig.up.requests())
		resp, body := roundTrip(t, tc, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		reqs := rig.up.requests()
		if len(reqs) != before+1 {
			t.Fatalf("upstream got %d requests, want 1", len(reqs)-before)
		}
		got := reqs[len(reqs)-1]
		if a := got.Header.Get("Authorization"); a != "Bearer "+real {
			t.Errorf("upstream Authorization = %q, want the real value", hideReal(a, real))
		}
		if got.Host != sni {
			t.Errorf("upstream Host = %q, want %q", got.Host, sni)
		}
		assertNoValue(t, real, "the sandbox", body)
	}

	t.Run("SNI equals name", func(t *testing.T) {
		swapped(t, ConnMeta{SandboxID: sbID, Dst: dst, Name: "api.conn.test"}, "api.conn.test")
	})
	t.Run("no name, host from SNI", func(t *testing.T) {
		swapped(t, ConnMeta{SandboxID: sbID, Dst: dst}, "api.conn.test")
	})
	t.Run("SNI differs from name", func(t *testing.T) {
		before := len(rig.up.requests())
		c, done := rig.handOver(t, ConnMeta{SandboxID: sbID, Dst: dst, Name: "api.conn.test"})
		tc := tls.Client(c, &tls.Config{ServerName: "other.conn.test", RootCAs: rig.caPool})
		tc.SetDeadline(time.Now().Add(handshakeGuard))
		if err := tc.Handshake(); err == nil {
			t.Fatal("TLS handshake succeeded, want the connection closed")
		}
		<-done
		if n := len(rig.up.requests()) - before; n != 0 {
			t.Errorf("upstream got %d requests, want none", n)
		}
		if !strings.Contains(rig.logs.String(), ReasonSNIMismatch) {
			t.Errorf("log has no %q line", ReasonSNIMismatch)
		}
	})
	t.Run("credential over plain HTTP", func(t *testing.T) {
		before := len(rig.up.requests())
		c, _ := rig.handOver(t, ConnMeta{SandboxID: sbID, Dst: netip.MustParseAddrPort("127.0.0.2:80"), Name: "api.conn.test"})
		req := newReq(t, http.MethodGet, "http://api.conn.test/v1/things", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, body := roundTrip(t, c, req)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), ReasonPlainHTTP) {
			t.Errorf("status %d, body %s; want 403 %q", resp.StatusCode, body, ReasonPlainHTTP)
		}
		if n := len(rig.up.requests()) - before; n != 0 {
			t.Errorf("upstream got %d requests, want none", n)
		}
	})
	// Bytes that are neither TLS nor HTTP go to the destination as they
	// are. The first message is shorter than any HTTP method plus a
	// space, and the client waits for its echo before sending more: the
	// gateway must not wait for more bytes to classify the flow.
	for _, first := range []string{"hello, echo server\n", "PING\r\n", "x"} {
		t.Run(fmt.Sprintf("spliced %q", first), func(t *testing.T) {
			c, done := rig.handOver(t, ConnMeta{SandboxID: sbID, Dst: netip.MustParseAddrPort("127.0.0.2:7"), Name: "echo.test"})
			c.SetDeadline(time.Now().Add(handshakeGuard))
			br := bufio.NewReader(c)
			for _, msg := range []string{first, "second message\n"} {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(br, got); err != nil {
					t.Fatalf("echo of %q: %v", msg, err)
				}
				if string(got) != msg {
					t.Fatalf("echo %q, want %q", got, msg)
				}
			}
			// Half-close travels: the echo server sees EOF and
			// closes, and the sandbox sees EOF.
			c.(*net.TCPConn).CloseWrite()
			if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
				t.Errorf("after close: %q, %v; want EOF", b, err)
			}
			<-done
		})
	}
	t.Run("unknown sandbox", func(t *testing.T) {
		c, done := rig.handOver(t, ConnMeta{SandboxID: "sb_nope", Dst: dst, Name: "echo.test"})
		io.WriteString(c, "hello, echo server\n")
		<-done
		c.SetReadDeadline(time.Now().Add(handshakeGuard))
		if n, err := c.Read(make([]byte, 16)); err == nil {
			t.Errorf("read %d bytes, want the connection closed", n)
		}
	})
	assertNoValue(t, real, "the log", []byte(rig.logs.String()))
}

// TestFlowInspect: an allowed TLS flow to a host without a secret is
// spliced (the sandbox sees the upstream's own certificate); with inspect
// "all" the same host is terminated with standin's CA and each request is
// logged.
func TestFlowInspect(t *testing.T) {
	rig := newRig(t, "bound.test", "free.test")
	rig.secret(client.SecretCreate{Name: "bound", Value: "sk-bound-REALVALUE-0123456789", Hosts: []client.HostAuth{
		{Host: "bound.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"TOKEN": "bound"}})

	// get opens a tunnel to free.test, checks whose certificate it gets,
	// and sends one request over it.
	get := func(t *testing.T, roots *x509.CertPool, wantIssuer string) {
		t.Helper()
		tc := tls.Client(rig.tunnel(t, "sb", "free.test:443"), &tls.Config{
			ServerName: "free.test", RootCAs: roots, NextProtos: []string{"http/1.1"},
		})
		tc.SetDeadline(time.Now().Add(handshakeGuard))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		if got := tc.ConnectionState().PeerCertificates[0].Issuer.CommonName; got != wantIssuer {
			t.Errorf("certificate issued by %q, want %q", got, wantIssuer)
		}
		resp, body := roundTrip(t, tc, newReq(t, http.MethodGet, "https://free.test/v1/open?q=1", nil))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	isFree := func(l map[string]any) bool { return l["host"] == "free.test" }

	t.Run("spliced", func(t *testing.T) {
		get(t, rig.up.roots, testutil.UpstreamCAName)
		// The flow's log line comes before any byte is spliced.
		if n := len(rig.waitLogLines("flow spliced", 1, isFree)); n != 1 {
			t.Errorf("%d spliced flows to free.test logged, want 1", n)
		}
		if n := len(rig.logLines("proxied request")); n != 0 {
			t.Errorf("%d requests logged, want none (spliced)", n)
		}
	})
	if _, err := rig.api.SetNetwork(context.Background(), "sb", client.NetworkRules{Inspect: "all"}); err != nil {
		t.Fatal(err)
	}
	t.Run("inspect all", func(t *testing.T) {
		get(t, rig.caPool, rig.gw.CA().Certificate().Subject.CommonName)
		lines := rig.waitLogLines("proxied request", 1, isFree)
		if len(lines) != 1 || lines[0]["path"] != "/v1/open?q=" || lines[0]["status"] != float64(200) {
			t.Errorf("logged %v, want one line for GET /v1/open?q= status 200", lines)
		}
	})
}

// TestProxyPlainHTTP: an absolute-form http:// request through the explicit
// proxy goes to a plain HTTP upstream when it carries no credential, and is
// refused when it carries a stand-in.
func TestProxyPlainHTTP(t *testing.T) {
	const real = "sk-plain-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	var mu sync.Mutex
	var got []*http.Request
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
		fmt.Fprintf(w, "plain %s %s", r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(up.Close)
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	rig.resolveLoopback("plain.test")
	rig.secret(client.SecretCreate{Name: "plain", Value: real, Hosts: []client.HostAuth{
		{Host: "plain.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	rig.sandbox(client.SandboxCreate{Name: "free", Network: loopbackRules})
	tok := rig.sandbox(client.SandboxCreate{Name: "bound", Secrets: map[string]string{"TOKEN": "plain"}, Network: loopbackRules})["TOKEN"]
	clientFor := func(sandbox string) *http.Client {
		tr := &http.Transport{Proxy: http.ProxyURL(rig.proxyURL(sandbox))}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: handshakeGuard}
	}
	url := "http://plain.test:" + port + "/hello?x=1"
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	for _, tc := range []struct {
		name, sandbox, auth string
		wantStatus          int
		wantUpstream        bool
	}{
		{"no secret", "free", "", http.StatusOK, true},
		{"secret bound, no credential", "bound", "", http.StatusOK, true},
		{"stand-in", "bound", "Bearer " + tok, http.StatusForbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := received()
			req := newReq(t, http.MethodGet, url, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			status, h, body := do(t, clientFor(tc.sandbox), req)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tc.wantStatus, body)
			}
			if n := received() - before; n != map[bool]int{false: 0, true: 1}[tc.wantUpstream] {
				t.Fatalf("upstream got %d requests", n)
			}
			if !tc.wantUpstream {
				if h.Get("X-Standin-Error") != CodeBlocked || !strings.Contains(string(body), ReasonPlainHTTP) {
					t.Errorf("refusal %q %s, want %q %q", h.Get("X-Standin-Error"), body, CodeBlocked, ReasonPlainHTTP)
				}
				return
			}
			if want := "plain GET /hello?x=1"; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			mu.Lock()
			r := got[len(got)-1]
			mu.Unlock()
			if r.Host != "plain.test:"+port {
				t.Errorf("upstream Host = %q, want %q", r.Host, "plain.test:"+port)
			}
			if v := r.Header.Get("Proxy-Authorization"); v != "" {
				t.Errorf("upstream got Proxy-Authorization %q", v)
			}
		})
	}
	rig.waitLogLines("proxied request", 3, nil)
	acts := rig.activity("plain")
	if len(acts) != 1 || acts[0].Outcome != "refused" || acts[0].Reason != ReasonPlainHTTP {
		t.Errorf("activity %+v, want one refused record (%q)", acts, ReasonPlainHTTP)
	}
}

// TestActivity: every request that used or tried to use a secret leaves one
// activity record and one canonical log line with the same facts, query
// values removed, and never the real value.
func TestActivity(t *testing.T) {
	const real = "sk-act-REALVALUE-0123456789abcdef"
	rig := newRig(t, "act.test", "other.test")
	rig.secret(client.SecretCreate{Name: "act", Value: real, Hosts: []client.HostAuth{
		{Host: "act.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	rig.secret(client.SecretCreate{Name: "other", Value: "sk-other-REALVALUE-0123456789", Hosts: []client.HostAuth{
		{Host: "other.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"ACT": "act", "OTHER": "other"}})
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/fail" {
			panic(http.ErrAbortHandler) // the upstream drops the request
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"echo":%q}`, r.Header.Get("Authorization"))
	})
	c := rig.httpClient("sb", true)

	type want struct {
		method, url, body string
		status            int
		rec               client.Activity
	}
	cases := []want{
		{http.MethodPost, "https://act.test/v1/items?id=42&token=abc&flag", "ten bytes!", http.StatusOK, client.Activity{
			Method: "POST", Host: "act.test", Path: "/v1/items?id=&token=&flag=", Status: 200, UpstreamStatus: 200,
			BytesOut: 10, Outcome: "ok"}},
		// act's stand-in sent to another secret's host.
		{http.MethodGet, "https://other.test/v1/x?k=v", "", http.StatusForbidden, client.Activity{
			Method: "GET", Host: "other.test", Path: "/v1/x?k=", Status: 403, Outcome: "refused", Reason: ReasonRevoked}},
		{http.MethodGet, "https://act.test/v1/fail", "", http.StatusBadGateway, client.Activity{
			Method: "GET", Host: "act.test", Path: "/v1/fail", Status: 502, Outcome: "error", Reason: ReasonUpstream}},
	}
	var wantRecs []client.Activity
	for _, tc := range cases {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req := newReq(t, tc.method, tc.url, body)
		req.Header.Set("Authorization", "Bearer "+env["ACT"])
		status, _, got := do(t, c, req)
		if status != tc.status {
			t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.url, status, tc.status, got)
		}
		assertNoValue(t, real, "the sandbox", got)
		rec := tc.rec
		rec.Secret, rec.Sandbox = "act", "sb"
		if tc.status == http.StatusOK {
			rec.BytesIn = int64(len(got)) // what the upstream sent, as the sandbox got it
		}
		wantRecs = append(wantRecs, rec)
	}

	rig.waitLogLines("proxied request", len(cases), nil)
	acts := rig.activity("act")
	// Newest first; compare in request order.
	for i, j := 0, len(acts)-1; i < j; i, j = i+1, j-1 {
		acts[i], acts[j] = acts[j], acts[i]
	}
	for _, a := range acts {
		if a.LatencyMS <= 0 {
			t.Errorf("%s %s: latency %v, want > 0", a.Method, a.Path, a.LatencyMS)
		}
		if time.Since(a.Time) > time.Hour || a.Time.After(time.Now()) {
			t.Errorf("%s %s: time %v, want just now", a.Method, a.Path, a.Time)
		}
	}
	if diff := cmp.Diff(wantRecs, acts, cmpopts.IgnoreFields(client.Activity{}, "ID", "Time", "LatencyMS")); diff != "" {
		t.Errorf("activity of secret act (-want +got):\n%s", diff)
	}
	if other := rig.activity("other"); len(other) != 0 {
		t.Errorf("secret other has %d records, want none (its stand-in was never sent)", len(other))
	}

	// The canonical log line: one per request, the same facts.
	var gotLines []client.Activity
	for _, l := range rig.logLines("proxied request") {
		num := func(k string) float64 { f, _ := l[k].(float64); return f }
		str := func(k string) string { s, _ := l[k].(string); return s }
		if num("latency_ms") <= 0 {
			t.Errorf("log line for %s: latency_ms %v, want > 0", str("path"), l["latency_ms"])
		}
		if secrets, _ := l["secrets"].([]any); len(secrets) != 1 || secrets[0] != "act" {
			t.Errorf("log line for %s: secrets %v, want [act]", str("path"), l["secrets"])
		}
		gotLines = append(gotLines, client.Activity{
			Secret: "act", Sandbox: str("sandbox"), Method: str("method"), Host: str("host"), Path: str("path"),
			Status: int(num("status")), UpstreamStatus: int(num("upstream_status")),
			BytesIn: int64(num("bytes_in")), BytesOut: int64(num("bytes_out")),
			Outcome: str("outcome"), Reason: str("reason"),
		})
	}
	if diff := cmp.Diff(wantRecs, gotLines); diff != "" {
		t.Errorf("proxied request log lines (-want +got):\n%s", diff)
	}
	assertNoValue(t, real, "the log", []byte(rig.logs.String()))
}
