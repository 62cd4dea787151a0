package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fake upstreams. Files of this package register a handler per host name in
// an init function; all of them are served by one local TLS server whose
// certificate (from a CA of the run's own, given to the server as
// gateway.upstreamCAFile) names every registered host, and the server's
// config routes each name to it (gateway.hosts). Every request that reaches
// it is recorded, so a test can say what arrived upstream and what never
// did.

var (
	handlersMu sync.Mutex
	handlers   = map[string]http.Handler{}
)

// Register serves host with h. Call it from an init function: the set of
// names is fixed when the server starts.
func Register(host string, h http.Handler) {
	handlersMu.Lock()
	defer handlersMu.Unlock()
	if _, dup := handlers[host]; dup {
		panic("e2e: host " + host + " registered twice")
	}
	handlers[host] = h
}

// Received is one request as the fake upstream saw it.
type Received struct {
	Host   string
	Method string
	Path   string // with the raw query
	Proto  string
	Header http.Header
	Body   []byte // the first 1 MiB
}

// Upstream is the local TLS server behind every fake host.
type Upstream struct {
	Addr   string // 127.0.0.1:port
	CAFile string
	ln     net.Listener
	srv    *http.Server

	mu   sync.Mutex
	seen []Received
}

func startUpstream(dir string) (*Upstream, error) {
	u := &Upstream{}
	names := u.Names()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "standin e2e fake upstream CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "standin e2e fake upstream"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames:    names,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	u.CAFile = filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(u.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return nil, err
	}
	u.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u.Addr = u.ln.Addr().String()
	u.srv = &http.Server{
		Handler: u,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go u.srv.ServeTLS(u.ln, "", "")
	return u, nil
}

func (u *Upstream) close() { u.srv.Close() }

// Names lists the registered hosts, sorted.
func (u *Upstream) Names() []string {
	handlersMu.Lock()
	defer handlersMu.Unlock()
	var names []string
	for n := range handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ServeHTTP records the request (keeping its body readable for the handler)
// and hands it to the host's handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	rec := Received{Host: host, Method: r.Method, Path: r.URL.RequestURI(), Proto: r.Proto, Header: r.Header.Clone()}
	u.mu.Lock()
	u.seen = append(u.seen, rec)
	r.Body = &recordingBody{r: r.Body, u: u, idx: len(u.seen) - 1}
	u.mu.Unlock()

	handlersMu.Lock()
	h := handlers[host]
	handlersMu.Unlock()
	if h == nil {
		http.Error(w, "e2e upstream: no fake for host "+host, http.StatusMisdirectedRequest)
		return
	}
	h.ServeHTTP(w, r)
}

// recordingBody copies up to 1 MiB of a request body into its record as the
// handler reads it.
type recordingBody struct {
	r   io.ReadCloser
	u   *Upstream
	idx int
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.u.mu.Lock()
		if len(b.u.seen[b.idx].Body) < 1<<20 {
			b.u.seen[b.idx].Body = append(b.u.seen[b.idx].Body, p[:n]...)
		}
		b.u.mu.Unlock()
	}
	return n, err
}

func (b *recordingBody) Close() error { return b.r.Close() }

// Requests returns what reached host so far (every host if host is "").
func (u *Upstream) Requests(host string) []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []Received
	for _, r := range u.seen {
		if host == "" || r.Host == host {
			r.Header = r.Header.Clone()
			r.Body = slices.Clone(r.Body)
			out = append(out, r)
		}
	}
	return out
}

// Mark returns a position in the record; Since returns what arrived after
// it, so a test looks only at its own requests.
func (u *Upstream) Mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func (u *Upstream) Since(mark int, host string) []Received {
	all := u.Requests("")
	var out []Received
	for _, r := range all[min(mark, len(all)):] {
		if host == "" || r.Host == host {
			out = append(out, r)
		}
	}
	return out
}

// Contains says whether s is anywhere in the request: request line,
// headers or body.
func (r Received) Contains(s string) bool {
	if strings.Contains(r.Path, s) || strings.Contains(string(r.Body), s) {
		return true
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(k+": "+v, s) {
				return true
			}
		}
	}
	return false
}

func (r Received) String() string {
	return fmt.Sprintf("%s %s%s (%s)", r.Method, r.Host, r.Path, r.Proto)
}

// ValueForms are the encodings a leaked value could take: raw, URL-encoded,
// hex and base64 (standard and URL alphabets, at each of the three byte
// alignments it can have inside a longer encoded string, such as a Basic
// credential).
func ValueForms(v string) []string {
	forms := []string{v, url.QueryEscape(v), hex.EncodeToString([]byte(v))}
	for k := 0; k < 3; k++ {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString(append(make([]byte, k), v...))
			// Drop the characters that depend on the bytes around v.
			lo, hi := 0, len(s)
			if k > 0 {
				lo = 4
			}
			hi -= 4
			if hi-lo >= 12 {
				forms = append(forms, s[lo:hi])
			}
		}
	}
	return slices.Compact(forms)
}
