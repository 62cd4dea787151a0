package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/api"
	"github.com/standin/standin/internal/audit"
	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/testutil"
	"github.com/standin/standin/internal/vault"
)

// guard127 is the upstream dial guard every test runs with: whatever a
// check does or fails to do, the gateway can only ever connect to
// loopback.
var guard127 = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// fakeResolver answers from a table; unknown names do not resolve. Tests
// never use the machine's DNS.
type fakeResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addrs[strings.ToLower(host)]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeResolver) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		f.addrs[host] = append(f.addrs[host], netip.MustParseAddr(a))
	}
}

// seen is one request as the fake upstream received it.
type seen struct {
	Method, Host, Path, RawQuery, Proto string
	Header                              http.Header
	Body                                []byte
}

// upstream is a fake provider: a local TLS server (HTTP/1.1 and h2) that
// records every request and answers through a swappable handler (default:
// echo the request as JSON).
type upstream struct {
	srv   *httptest.Server
	roots *x509.CertPool
	cert  tls.Certificate
	addr  netip.AddrPort
	mu    sync.Mutex
	reqs  []seen
	h     http.HandlerFunc
}

func newUpstream(tb testing.TB, names ...string) *upstream {
	tb.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Proto: r.Proto, Header: r.Header.Clone(), Body: body})
		h := u.h
		u.mu.Unlock()
		if h != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"header": r.Header, "query": r.URL.RawQuery, "body": string(body)})
	}))
	u.srv.EnableHTTP2 = true
	// A certificate as a real provider's public one, for names (and
	// 127.0.0.1), from a CA only the gateway's UpstreamRoots trust.
	ca, cert := testutil.UpstreamCert(tb, append([]string{"upstream.test"}, names...), net.IPv4(127, 0, 0, 1))
	u.roots, u.cert = x509.NewCertPool(), cert
	u.roots.AddCert(ca)
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{u.cert}}
	u.srv.StartTLS()
	tb.Cleanup(u.srv.Close)
	u.addr = netip.MustParseAddrPort(u.srv.Listener.Addr().String())
	return u
}

func (u *upstream) handle(h http.HandlerFunc) {
	u.mu.Lock()
	u.h = h
	u.mu.Unlock()
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// rig is a whole gateway on loopback: store, vault, API (through the Go
// SDK), explicit proxy, and a fake upstream that every overridden host name
// routes to.
type rig struct {
	t        testing.TB
	api      *client.Client
	gw       *Gateway
	up       *upstream
	proxy    string // host:port of the explicit proxy
	store    *store.SQLite
	minter   *standin.Minter
	caPool   *x509.CertPool
	resolver *fakeResolver
	audit    *audit.Writer
	logs     *testutil.SyncBuffer
	cfg      Config // what the gateway was built from, to build another
}

// newRig starts everything; hosts are names routed to the fake upstream.
func newRig(tb testing.TB, hosts ...string) *rig {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	dir := tb.TempDir()
	st, err := store.OpenSQLite(ctx, dir+"/standin.db")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := vault.NewKeyring(key)
	if err != nil {
		tb.Fatal(err)
	}
	vt := vault.New(kr, nil)
	mkey := make([]byte, 32)
	rand.Read(mkey)
	minter, err := standin.NewMinter(mkey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := LoadOrCreateCA(dir + "/ca")
	if err != nil {
		tb.Fatal(err)
	}
	up := newUpstream(tb, hosts...)
	overrides := map[string][]netip.AddrPort{}
	for _, h := range hosts {
		overrides[h] = []netip.AddrPort{up.addr}
	}
	upRoots := up.roots
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res := &fakeResolver{addrs: map[string][]netip.Addr{}}
	aud := &audit.Writer{Store: st, Logger: logger}
	go aud.Run(ctx)
	cfg := Config{
		Store: st, Vault: vt, Minter: minter, CA: ca,
		Dialer:        &Dialer{Overrides: overrides, Guard: guard127, Resolver: res},
		Audit:         aud,
		UpstreamRoots: upRoots,
		Logger:        logger,
	}
	gw, proxy := serveProxy(tb, ctx, cfg)

	as := httptest.NewServer((&api.Server{Store: st, Vault: vt, Minter: minter, Token: "test-token",
		Logger: logger, Changed: gw.Invalidate, Proxy: proxy, CACert: ca.CertPEM()}).Handler())
	tb.Cleanup(as.Close)
	caPool := x509.NewCertPool()
	caPool.AddCert(ca.Certificate())
	return &rig{t: tb, api: client.New(as.URL, "test-token"), gw: gw, up: up, proxy: proxy,
		store: st, minter: minter, caPool: caPool, resolver: res, audit: aud, logs: logs, cfg: cfg}
}

// serveProxy starts a gateway built from cfg, with its explicit proxy on
// loopback until ctx is done or the test ends, and returns it and the
// proxy's address.
func serveProxy(tb testing.TB, ctx context.Context, cfg Config) (*Gateway, string) {
	tb.Helper()
	gw, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	tb.Cleanup(cancel)
	go gw.ServeProxy(ctx, l)
	return gw, l.Addr().String()
}

// secret creates a secret and fails the test on error.
func (r *rig) secret(req client.SecretCreate) client.Secret {
	r.t.Helper()
	s, err := r.api.CreateSecret(context.Background(), req)
	if err != nil {
		r.t.Fatalf("create secret %s: %v", req.Name, err)
	}
	return s
}

// sandbox creates a sandbox and returns its env (stand-ins by variable).
func (r *rig) sandbox(req client.SandboxCreate) map[string]string {
	r.t.Helper()
	sb, err := r.api.CreateSandbox(context.Background(), req)
	if err != nil {
		r.t.Fatalf("create sandbox %s: %v", req.Name, err)
	}
	env := map[string]string{}
	for _, b := range sb.Bindings {
		env[b.EnvVar] = b.StandIn
	}
	return env
}

// proxyURL is the sandbox's HTTPS_PROXY, from the API's env endpoint.
func (r *rig) proxyURL(sandbox string) *url.URL {
	r.t.Helper()
	env, err := r.api.SandboxEnv(context.Background(), sandbox)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, kv := range env.Env {
		if v, ok := strings.CutPrefix(kv, "HTTPS_PROXY="); ok {
			u, err := url.Parse(v)
			if err != nil {
				r.t.Fatal(err)
			}
			return u
		}
	}
	r.t.Fatal("no HTTPS_PROXY in sandbox env")
	return nil
}

// httpClient is what code inside the sandbox uses: the explicit proxy and
// standin's CA. h2 selects HTTP/2 to the gateway.
func (r *rig) httpClient(sandbox string, h2 bool) *http.Client {
	tr := &http.Transport{
		Proxy:             http.ProxyURL(r.proxyURL(sandbox)),
		TLSClientConfig:   &tls.Config{RootCAs: r.caPool},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	r.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends req through c and returns status and body.
func do(tb testing.TB, c *http.Client, req *http.Request) (int, http.Header, []byte) {
	tb.Helper()
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Header, b
}

func newReq(tb testing.TB, method, u string, body io.Reader) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

// activity waits for the audit writer and returns the secret's records.
func (r *rig) activity(secret string) []client.Activity {
	r.t.Helper()
	if err := r.audit.Flush(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	p, err := r.api.SecretActivity(context.Background(), secret, client.ActivityFilter{Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	return p.Items
}

// assertNoValue fails if value appears in any of the byte slices.
func assertNoValue(tb testing.TB, value string, where string, data ...[]byte) {
	tb.Helper()
	for _, d := range data {
		if bytes.Contains(d, []byte(value)) {
			tb.Errorf("real value reached %s", where)
		}
	}
}
