package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newCAForTest returns a CA created in a fresh temporary directory.
func newCAForTest(tb testing.TB) *CA {
	tb.Helper()
	c, err := LoadOrCreateCA(tb.TempDir())
	if err != nil {
		tb.Fatalf("LoadOrCreateCA: %v", err)
	}
	return c
}

// caFakeClock is a settable clock for CA.Clock.
type caFakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *caFakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *caFakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}

// writeCAFilesForTest self-signs tmpl with key and writes dir/ca.pem and
// dir/ca.key (0400), for CAs that LoadOrCreateCA would never make.
func writeCAFilesForTest(tb testing.TB, dir string, tmpl *x509.Certificate, key *ecdsa.PrivateKey) {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	writeFileForTest(tb, filepath.Join(dir, CACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeFileForTest(tb, filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o400)
}

// writeFileForTest replaces path, even a read-only one, and sets its mode.
func writeFileForTest(tb testing.TB, path string, data []byte, perm fs.FileMode) {
	tb.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		tb.Fatal(err)
	}
}

func caPool(c *CA) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.Certificate())
	return pool
}

func TestLoadOrCreateCACreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "ca")
	before := time.Now()
	c, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateCA(%q): %v", dir, err)
	}

	modes := map[string]fs.FileMode{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		modes[e.Name()] = fi.Mode()
	}
	// No temporary files left behind, and exact modes.
	want := map[string]fs.FileMode{CACertFile: 0o644, CAKeyFile: 0o400}
	if diff := cmp.Diff(want, modes); diff != "" {
		t.Errorf("CA directory files (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("CA directory mode = %04o, want 0700", got)
	}

	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s does not hold a PEM \"PRIVATE KEY\" block", CAKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s is not PKCS#8: %v", CAKeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("CA key is %T, want ECDSA P-256", k)
	}

	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certPEM, c.CertPEM()) {
		t.Errorf("CertPEM() differs from %s", CACertFile)
	}
	block, _ = pem.Decode(c.CertPEM())
	if block == nil || !bytes.Equal(block.Bytes, c.Certificate().Raw) {
		t.Errorf("CertPEM() does not encode Certificate()")
	}

	cert := c.Certificate()
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("CA certificate does not hold the CA key")
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"IsCA", cert.IsCA, true},
		{"BasicConstraintsValid", cert.BasicConstraintsValid, true},
		{"MaxPathLen", cert.MaxPathLen, 0},
		{"MaxPathLenZero", cert.MaxPathLenZero, true},
		{"KeyUsage", cert.KeyUsage, x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{"Organization", cert.Subject.Organization, []string{"standin"}},
		{"CN has prefix", strings.HasPrefix(cert.Subject.CommonName, "standin interception CA "), true},
		{"CN length", len(cert.Subject.CommonName), len("standin interception CA ") + 8},
		{"self-signed", cert.CheckSignatureFrom(cert), nil},
		{"serial positive", cert.SerialNumber.Sign(), 1},
		{"serial within 128 bits", cert.SerialNumber.BitLen() <= 128, true},
		{"no name constraints", len(cert.PermittedDNSDomains) + len(cert.ExcludedDNSDomains), 0},
		{"valid now", cert.NotBefore.Before(before) && time.Now().Before(cert.NotAfter), true},
		{"lifetime 10 years", cert.NotAfter.Sub(cert.NotBefore) > 10*365*24*time.Hour, true},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
			t.Errorf("CA certificate %s (-want +got):\n%s", ch.what, diff)
		}
	}
}

func TestLoadOrCreateCAReloads(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	// 0600 is owner-only too, and must load.
	if err := os.Chmod(filepath.Join(dir, CAKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateCA(%q) again: %v", dir, err)
	}
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Errorf("reloaded CA has a different certificate")
	}
	// A leaf signed after the reload verifies against the first CA.
	leaf, err := second.Leaf("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "api.example.com", Roots: caPool(first)}); err != nil {
		t.Errorf("leaf from the reloaded CA does not verify against the first: %v", err)
	}
}

func TestLoadOrCreateCARefuses(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKeyDER, err := x509.MarshalPKCS8PrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1DER, err := x509.MarshalECPrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	caTemplate := func(notBefore, notAfter time.Time, isCA bool) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "test"},
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			BasicConstraintsValid: true,
			IsCA:                  isCA,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
	}
	now := time.Now()
	chmodKey := func(mode os.FileMode) func(*testing.T, string) {
		return func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, CAKeyFile), mode) }
	}

	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // dir holds a valid CA on entry
		wantErr string
	}{
		{
			name:    "key mode 0644",
			setup:   chmodKey(0o644),
			wantErr: "has mode 0644; it must be readable only by its owner: chmod 400 ",
		},
		{
			name:    "key mode 0440",
			setup:   chmodKey(0o440),
			wantErr: "chmod 400",
		},
		{
			name:    "key mode 0401",
			setup:   chmodKey(0o401),
			wantErr: "chmod 400",
		},
		{
			name: "key of another CA",
			setup: func(t *testing.T, dir string) {
				writeFileForTest(t, filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherKeyDER}), 0o400)
			},
			wantErr: "does not match certificate",
		},
		{
			name: "SEC1 key",
			setup: func(t *testing.T, dir string) {
				writeFileForTest(t, filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}), 0o400)
			},
			wantErr: `holds no PKCS#8 PEM "PRIVATE KEY" block`,
		},
		{
			name: "certificate is not a CA",
			setup: func(t *testing.T, dir string) {
				writeCAFilesForTest(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour), false), otherKey)
			},
			wantErr: "is not a CA certificate",
		},
		{
			name: "certificate expired",
			setup: func(t *testing.T, dir string) {
				writeCAFilesForTest(t, dir, caTemplate(now.Add(-48*time.Hour), now.Add(-time.Hour), true), otherKey)
			},
			wantErr: "expired on",
		},
		{
			name: "certificate not PEM",
			setup: func(t *testing.T, dir string) {
				writeFileForTest(t, filepath.Join(dir, CACertFile), []byte("hello\n"), 0o644)
			},
			wantErr: `holds no PEM "CERTIFICATE" block`,
		},
		{
			name: "key missing",
			setup: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, CAKeyFile))
			},
			wantErr: "ca.pem exists but ",
		},
		{
			name: "certificate missing",
			setup: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, CACertFile))
			},
			wantErr: "ca.key exists but ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreateCA(dir); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			setupListing := dirListing(t, dir)
			c, err := LoadOrCreateCA(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadOrCreateCA(%q) = %v, %v; want error containing %q", dir, c, err, tt.wantErr)
			}
			// A refusal never replaces or deletes what is there.
			if diff := cmp.Diff(setupListing, dirListing(t, dir)); diff != "" {
				t.Errorf("LoadOrCreateCA changed the directory after refusing (-before +after):\n%s", diff)
			}
		})
	}
}

// dirListing maps file names in dir to their contents.
func dirListing(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestLeafVerifies(t *testing.T) {
	c := newCAForTest(t)
	tests := []struct {
		name     string
		verifyAs string
		wantDNS  []string
		wantIP   []string
	}{
		{name: "api.example.com", verifyAs: "api.example.com", wantDNS: []string{"api.example.com"}},
		{name: "API.Example.COM.", verifyAs: "api.example.com", wantDNS: []string{"api.example.com"}},
		{name: "localhost", verifyAs: "localhost", wantDNS: []string{"localhost"}},
		{name: "my_host.internal.example", verifyAs: "my_host.internal.example", wantDNS: []string{"my_host.internal.example"}},
		{name: "127.0.0.1", verifyAs: "127.0.0.1", wantIP: []string{"127.0.0.1"}},
		{name: "2001:DB8::1", verifyAs: "2001:db8::1", wantIP: []string{"2001:db8::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := c.Leaf(tt.name)
			if err != nil {
				t.Fatalf("Leaf(%q): %v", tt.name, err)
			}
			if len(cert.Certificate) != 1 || !bytes.Equal(cert.Certificate[0], cert.Leaf.Raw) {
				t.Errorf("Leaf(%q) chain has %d certificates, want the leaf only", tt.name, len(cert.Certificate))
			}
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{
				DNSName:   tt.verifyAs,
				Roots:     caPool(c),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("Leaf(%q) does not verify as %q: %v", tt.name, tt.verifyAs, err)
			}
			var gotIP []string
			for _, ip := range cert.Leaf.IPAddresses {
				gotIP = append(gotIP, ip.String())
			}
			if diff := cmp.Diff(tt.wantDNS, cert.Leaf.DNSNames); diff != "" {
				t.Errorf("Leaf(%q) DNS names (-want +got):\n%s", tt.name, diff)
			}
			if diff := cmp.Diff(tt.wantIP, gotIP); diff != "" {
				t.Errorf("Leaf(%q) IP addresses (-want +got):\n%s", tt.name, diff)
			}
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: caPool(c)}); err == nil {
				t.Errorf("Leaf(%q) verifies as other.example.com", tt.name)
			}
		})
	}
}

func TestLeafFields(t *testing.T) {
	c := newCAForTest(t)
	now := time.Now().Truncate(time.Second)
	c.Clock = func() time.Time { return now }
	a, err := c.Leaf("a.example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Leaf("b.example.com")
	if err != nil {
		t.Fatal(err)
	}
	leaf := a.Leaf
	checks := []struct {
		what      string
		got, want any
	}{
		{"NotBefore", leaf.NotBefore, now.Add(-time.Hour)},
		{"NotAfter", leaf.NotAfter, now.Add(7 * 24 * time.Hour)},
		{"ExtKeyUsage", leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"KeyUsage", leaf.KeyUsage, x509.KeyUsageDigitalSignature},
		{"IsCA", leaf.IsCA, false},
		{"CommonName", leaf.Subject.CommonName, ""},
		{"Issuer", leaf.Issuer.String(), c.Certificate().Subject.String()},
		{"AuthorityKeyId", leaf.AuthorityKeyId, c.Certificate().SubjectKeyId},
		{"key matches", leaf.PublicKey.(*ecdsa.PublicKey).Equal(a.PrivateKey.(*ecdsa.PrivateKey).Public()), true},
		{"key shared by leaves", a.PrivateKey == b.PrivateKey, true},
		{"serials differ", a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) != 0, true},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("leaf %s (-want +got):\n%s", ch.what, diff)
		}
	}
	if got := leaf.PublicKey.(*ecdsa.PublicKey).Curve; got != elliptic.P256() {
		t.Errorf("leaf key curve = %v, want P-256", got.Params().Name)
	}
}

// TestLeafTLSHandshake checks that a client trusting only the CA completes
// a real handshake with a leaf-only chain, over an in-memory connection.
func TestLeafTLSHandshake(t *testing.T) {
	c := newCAForTest(t)
	for _, name := range []string{"api.example.com", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			sc, cc := net.Pipe()
			defer sc.Close()
			defer cc.Close()
			srv := tls.Server(sc, &tls.Config{
				GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
					if hello.ServerName == "" {
						return c.Leaf(name) // clients send no SNI for IP literals
					}
					return c.Leaf(hello.ServerName)
				},
			})
			errc := make(chan error, 1)
			go func() { errc <- srv.HandshakeContext(context.Background()) }()
			cli := tls.Client(cc, &tls.Config{RootCAs: caPool(c), ServerName: name})
			if err := cli.HandshakeContext(context.Background()); err != nil {
				t.Fatalf("client handshake with %q: %v", name, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if got := len(cli.ConnectionState().PeerCertificates); got != 1 {
				t.Errorf("server sent %d certificates, want 1", got)
			}
		})
	}
}

func TestLeafRefusesNames(t *testing.T) {
	c := newCAForTest(t)
	tests := []string{
		"",
		".",
		"*.evil",
		"*",
		"evil.*.com",
		"a..b",
		".a.com",
		"-a.com",
		"a-.com",
		"a b.com",
		"a.com/path",
		"a.com:443",
		"[::1]",
		"fe80::1%eth0",
		"1.2.3.999",
		"127.000.000.001",
		"1.2.3",
		"bücher.example",
		"\u212a.example", // Kelvin sign, which strings.ToLower maps to "k"
		"a.com\x00",
		strings.Repeat("a", 64) + ".com",
		strings.Repeat("a.", 127) + "com", // 257 bytes
	}
	for _, name := range tests {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			cert, err := c.Leaf(name)
			if !errors.Is(err, ErrInvalidLeafName) {
				t.Errorf("Leaf(%q) = %v, %v; want ErrInvalidLeafName", name, cert, err)
			}
		})
	}
	if got := c.signs.Load(); got != 0 {
		t.Errorf("refused names signed %d leaves, want 0", got)
	}
}

func TestLeafCacheHit(t *testing.T) {
	c := newCAForTest(t)
	first, err := c.Leaf("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api.example.com", "API.EXAMPLE.COM", "api.example.com."} {
		got, err := c.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("Leaf(%q) = %p, want the cached %p", name, got, first)
		}
	}
	if got := c.signs.Load(); got != 1 {
		t.Errorf("signed %d leaves, want 1", got)
	}
}

func TestLeafConcurrentMissSignsOnce(t *testing.T) {
	c := newCAForTest(t)
	const name = "api.example.com"
	const n = 16
	entered := make(chan struct{}, n) // one send per signature
	release := make(chan struct{})
	c.signHook = func(string) {
		entered <- struct{}{}
		<-release
	}

	results := make([]*tls.Certificate, n)
	var wg sync.WaitGroup
	leaf := func(i int) {
		defer wg.Done()
		cert, err := c.Leaf(name)
		if err != nil {
			t.Errorf("Leaf(%q): %v", name, err)
		}
		results[i] = cert
	}
	wg.Add(n)
	go leaf(0)
	<-entered // the first caller is signing
	for i := 1; i < n; i++ {
		go leaf(i)
	}
	// Wait until every other caller is waiting on the first one's result,
	// or one of them starts signing too.
	for {
		c.mu.Lock()
		dups := 0
		if call := c.inflight[name]; call != nil {
			dups = call.dups
		}
		c.mu.Unlock()
		if dups == n-1 || len(entered) > 0 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()

	if got := c.signs.Load(); got != 1 {
		t.Errorf("%d concurrent Leaf(%q) signed %d times, want 1", n, name, got)
	}
	for i, r := range results {
		if r == nil || r != results[0] {
			t.Errorf("caller %d got %p, want %p", i, r, results[0])
		}
	}
	if len(c.inflight) != 0 {
		t.Errorf("%d signatures still in flight", len(c.inflight))
	}
}

func TestLeafSignPanicReleasesWaiters(t *testing.T) {
	c := newCAForTest(t)
	c.signHook = func(string) { panic("boom") }
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		c.Leaf("api.example.com")
	}()
	c.signHook = nil
	// Nothing was cached or left in flight: the next call signs.
	if _, err := c.Leaf("api.example.com"); err != nil {
		t.Fatalf("Leaf after a panicked signature: %v", err)
	}
	if got := c.signs.Load(); got != 1 {
		t.Errorf("signed %d leaves, want 1", got)
	}
}

func TestLeafLRUEviction(t *testing.T) {
	c := newCAForTest(t)
	c.maxLeaves = 2
	get := func(name string) *tls.Certificate {
		t.Helper()
		cert, err := c.Leaf(name)
		if err != nil {
			t.Fatalf("Leaf(%q): %v", name, err)
		}
		return cert
	}
	a := get("a.example")
	get("b.example")
	if got := get("a.example"); got != a { // a is now the most recent
		t.Errorf("Leaf(a) was not cached")
	}
	cc := get("c.example") // evicts b, the least recently used
	if got := get("a.example"); got != a {
		t.Errorf("Leaf(a) was evicted, want b evicted")
	}
	if got := get("c.example"); got != cc {
		t.Errorf("Leaf(c) was evicted, want b evicted")
	}
	if got := c.signs.Load(); got != 3 {
		t.Errorf("signed %d leaves before asking for b again, want 3", got)
	}
	get("b.example")
	if got := c.signs.Load(); got != 4 {
		t.Errorf("signed %d leaves, want 4 (b re-signed after eviction)", got)
	}
	if got := c.lru.Len(); got != 2 || len(c.leaves) != 2 {
		t.Errorf("cache holds %d list entries and %d map entries, want 2 and 2", got, len(c.leaves))
	}
}

func TestLeafRenewsBeforeExpiry(t *testing.T) {
	c := newCAForTest(t)
	t0 := time.Now()
	clock := &caFakeClock{t: t0}
	c.Clock = clock.Now
	const name = "api.example.com"

	first, err := c.Leaf(name)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(6*24*time.Hour - time.Minute)) // more than a day left
	if got, _ := c.Leaf(name); got != first {
		t.Errorf("Leaf(%q) with more than a day left was re-signed", name)
	}
	now := t0.Add(6*24*time.Hour + time.Minute) // less than a day left
	clock.Set(now)
	second, err := c.Leaf(name)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatalf("Leaf(%q) with less than a day left was not re-signed", name)
	}
	if want := now.Add(7 * 24 * time.Hour); !second.Leaf.NotAfter.Equal(want.Truncate(time.Second)) {
		t.Errorf("renewed leaf NotAfter = %v, want %v", second.Leaf.NotAfter, want)
	}
	if _, err := second.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: caPool(c), CurrentTime: now.Add(5 * 24 * time.Hour)}); err != nil {
		t.Errorf("renewed leaf does not verify 5 days later: %v", err)
	}
	if got, _ := c.Leaf(name); got != second {
		t.Errorf("renewed leaf was not cached")
	}
}

func TestLeafWithinCAValidity(t *testing.T) {
	c := newCAForTest(t)
	caCert := c.Certificate()
	clock := &caFakeClock{t: caCert.NotAfter.Add(-2 * time.Hour)}
	c.Clock = clock.Now

	cert, err := c.Leaf("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(caCert.NotAfter) {
		t.Errorf("leaf NotAfter = %v, want the CA's %v", cert.Leaf.NotAfter, caCert.NotAfter)
	}
	// Near the CA's end the leaf is kept, not re-signed on every call.
	if again, _ := c.Leaf("api.example.com"); again != cert {
		t.Errorf("leaf near CA expiry was re-signed on the next call")
	}

	clock.Set(caCert.NotAfter.Add(time.Minute))
	if cert, err := c.Leaf("api.example.com"); err == nil || !strings.Contains(err.Error(), "CA certificate expired") {
		t.Errorf("Leaf after CA expiry = %v, %v; want CA expired error", cert, err)
	}

	clock.Set(caCert.NotBefore.Add(-time.Hour))
	cert, err = c.Leaf("early.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotBefore.Equal(caCert.NotBefore) {
		t.Errorf("leaf NotBefore = %v, want the CA's %v", cert.Leaf.NotBefore, caCert.NotBefore)
	}
}

func TestCARedactsKeys(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d := k.(*ecdsa.PrivateKey).D
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("ca", "ca", c)
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", c),
		"%+v": fmt.Sprintf("%+v", c),
		"%#v": fmt.Sprintf("%#v", c),
		"%s":  fmt.Sprintf("%s", c),
		"log": logged.String(),
	}
	for verb, out := range outputs {
		for _, secret := range []string{d.String(), d.Text(16), c.leafKey.D.String(), c.leafKey.D.Text(16)} {
			if strings.Contains(out, secret) {
				t.Errorf("%s of the CA contains a private key: %s", verb, out)
			}
		}
		if !strings.Contains(out, "standin interception CA") {
			t.Errorf("%s of the CA = %q, want its name", verb, out)
		}
	}
}

func FuzzParseLeafName(f *testing.F) {
	for _, s := range []string{"api.example.com", "API.Example.COM.", "127.0.0.1", "::1", "*.evil", "", "a..b", "\u212a.com", "1.2.3", "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		host, ip, err := parseLeafName(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidLeafName) {
				t.Fatalf("parseLeafName(%q) error %v is not ErrInvalidLeafName", name, err)
			}
			return
		}
		if host == "" || strings.HasSuffix(host, ".") || strings.ToLower(host) != host || strings.Contains(host, "*") {
			t.Fatalf("parseLeafName(%q) = %q, not canonical", name, host)
		}
		// Canonical forms are fixed points.
		host2, ip2, err := parseLeafName(host)
		if err != nil || host2 != host || ip2 != ip {
			t.Fatalf("parseLeafName(%q) = %q, %v, %v; want %q, %v (from %q)", host, host2, ip2, err, host, ip, name)
		}
	})
}

func BenchmarkLeafCached(b *testing.B) {
	c := newCAForTest(b)
	if _, err := c.Leaf("api.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Leaf("api.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafMint(b *testing.B) {
	c := newCAForTest(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.Leaf("h" + strconv.Itoa(i) + ".example.com"); err != nil {
			b.Fatal(err)
		}
	}
}
