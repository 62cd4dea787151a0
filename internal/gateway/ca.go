package gateway

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files of the CA directory.
const (
	CACertFile = "ca.pem" // CA certificate, PEM, mode 0644
	CAKeyFile  = "ca.key" // CA private key, PKCS#8 PEM, mode 0400
)

// ErrInvalidLeafName is returned by Leaf for a name that is neither a DNS
// host name nor an IP literal: empty, wildcard, bad characters or lengths.
var ErrInvalidLeafName = errors.New("invalid host name for a certificate")

var errLeafSignPanicked = errors.New("sign leaf certificate: signer panicked")

const (
	caOrganization = "standin"

	// The CA lives ten years, as mkcert's does. Its certificate is copied
	// into every sandbox's trust store and into whatever images and tool
	// configs users bake it into; replacing it means redistributing it
	// everywhere, so it should practically never expire. Its key never
	// leaves the CA directory (mode 0400), and what it signs is
	// short-lived, which is where the risk is limited instead.
	caLifetimeYears = 10

	// Certificates are valid from an hour ago, so a sandbox whose clock is
	// slightly behind the host's still accepts them.
	caBackdate = time.Hour

	// A leaf lives 7 days and is re-signed when less than a day is left.
	// A short life limits what a leaked leaf (its key is shared by all
	// leaves and only in memory) is worth, and sandboxes are short-lived,
	// so they rarely see a renewal; a week keeps re-signing rare for a
	// long-running daemon. Renewing a day early means a connection never
	// gets a certificate that expires while it is open, for any sane
	// connection lifetime.
	leafLifetime    = 7 * 24 * time.Hour
	leafRenewBefore = 24 * time.Hour

	// leafCacheSize bounds the leaf cache. A leaf costs about 1 KiB, and
	// a daemon rarely intercepts more than a few hundred distinct hosts.
	leafCacheSize = 4096
)

// CA is standin's interception CA: an ECDSA P-256 root that signs a leaf per
// host name on demand. Leaves share one key pair generated at start, so
// minting a leaf for a new host is one signature, no key generation; signed
// leaves are kept in an LRU cache.
//
// The CA has no name constraints: the hosts it must sign for are whatever
// hosts users bind credentials to (any public domain, custom API hosts, IP
// literals), so a permitted-subtree list would mean re-issuing the CA, and
// re-trusting it in every sandbox, whenever a binding named a new host.
// MaxPathLenZero instead makes sure it cannot sign an intermediate CA.
type CA struct {
	// Clock returns the current time, for leaf validity and renewal. If
	// nil, time.Now is used. Set it before the first call to Leaf.
	Clock func() time.Time

	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	leafKey *ecdsa.PrivateKey // shared by all leaves, never written to disk

	mu        sync.Mutex
	maxLeaves int
	lru       *list.List               // of *leafEntry, most recently used first
	leaves    map[string]*list.Element // by normalized name
	inflight  map[string]*leafCall     // signatures in progress, by normalized name

	signs    atomic.Int64      // leaves signed, for tests and benchmarks
	signHook func(name string) // called before each signature, for tests
}

type leafEntry struct {
	name    string
	cert    *tls.Certificate
	renewAt time.Time
}

// leafCall is one signature in progress; callers asking for the same name
// meanwhile wait on done instead of signing again (a minimal
// golang.org/x/sync/singleflight).
type leafCall struct {
	done    chan struct{}
	dups    int // callers waiting on done
	cert    *tls.Certificate
	renewAt time.Time
	err     error
}

// LoadOrCreateCA loads dir/ca.pem and dir/ca.key, creating them on first
// start (key mode 0400, cert 0644). It refuses a key file readable by group
// or others, saying what to do.
func LoadOrCreateCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certExists, err := caFileExists(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyExists, err := caFileExists(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}

	var c *CA
	switch {
	case certExists && keyExists:
		c, err = loadCA(certPath, keyPath)
	case !certExists && !keyExists:
		c, err = createCA(dir)
	default:
		have, missing := certPath, keyPath
		if keyExists {
			have, missing = keyPath, certPath
		}
		return nil, fmt.Errorf("load CA: %s exists but %s does not; restore it from backup, or delete %s to make a new CA (sandboxes must then trust the new one)",
			have, missing, have)
	}
	if err != nil {
		return nil, err
	}

	// One key for every leaf: minting a leaf is then a single signature.
	// It lives only in this process, so a restart rotates it.
	c.leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate leaf key: %w", err)
	}
	c.maxLeaves = leafCacheSize
	c.lru = list.New()
	c.leaves = make(map[string]*list.Element)
	c.inflight = make(map[string]*leafCall)
	return c, nil
}

func caFileExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// createCA makes a new CA key and certificate and writes them to dir.
func createCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create CA: generate key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	// The short id tells one standin CA from another in a trust store
	// listing; it is derived from the key, so it is stable across reloads.
	sum := sha256.Sum256(spki)
	serial, err := caSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{caOrganization},
			CommonName:   "standin interception CA " + hex.EncodeToString(sum[:4]),
		},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.AddDate(caLifetimeYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Path length 0: leaves only, no intermediates.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create CA: encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	// The key goes first: a crash between the two renames leaves a key
	// without a certificate, which LoadOrCreateCA reports instead of
	// silently replacing.
	err = caWriteFile(dir, CAKeyFile, keyPEM, 0o400)
	clear(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("create CA: write key: %w", err)
	}
	if err := caWriteFile(dir, CACertFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("create CA: write certificate: %w", err)
	}
	if err := caSyncDir(dir); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return &CA{cert: cert, certPEM: certPEM, key: key}, nil
}

// caWriteFile writes data to dir/name with mode perm through a temporary
// file that is fsynced and renamed into place, so a crash never leaves a
// half-written file. The caller fsyncs dir.
func caWriteFile(dir, name string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	_, err = f.Write(data)
	if err == nil {
		// Chmod is not subject to the umask, so the mode is exact.
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// caSyncDir fsyncs a directory so that renames in it survive a crash.
func caSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadCA reads and checks an existing CA certificate and key.
func loadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("load CA: %s holds no PEM \"CERTIFICATE\" block", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA: parse %s: %w", certPath, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load CA: %s is not a CA certificate (basic constraints CA:TRUE missing)", certPath)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA: %s is not a CA certificate (key usage lacks certificate signing)", certPath)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("load CA: %s expired on %s; delete it and %s to make a new CA (sandboxes must then trust the new one)",
			certPath, cert.NotAfter.UTC().Format(time.DateOnly), filepath.Base(keyPath))
	}

	key, err := loadCAKey(keyPath)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("load CA: key %s does not match certificate %s", keyPath, certPath)
	}
	// Keep only the first block, so CertPEM is exactly the certificate in
	// use even if the file has trailing material.
	return &CA{cert: cert, certPEM: pem.EncodeToMemory(block), key: key}, nil
}

func loadCAKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load CA: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load CA: key file %s has mode %04o; it must be readable only by its owner: chmod 400 %s",
			path, perm, path)
	}
	// A key file is a few hundred bytes; the limit keeps a wrong path
	// from being read whole.
	buf, err := io.ReadAll(io.LimitReader(f, 64<<10))
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("load CA: read key: %w", err)
	}
	block, _ := pem.Decode(buf)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("load CA: key file %s holds no PKCS#8 PEM \"PRIVATE KEY\" block", path)
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA: parse key file %s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load CA: key file %s holds a %T, which cannot sign", path, k)
	}
	return signer, nil
}

// caSerial returns a random 128-bit serial number, as mkcert does: serials
// must be unique per issuer, and random ones need no state.
func caSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	s, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return s, nil
}

// CertPEM is the CA certificate, PEM encoded, for the sandbox's trust store
// and `standin ca export`.
func (c *CA) CertPEM() []byte { return append([]byte(nil), c.certPEM...) }

// Certificate is the parsed CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// String names the CA by its subject; it never shows key material.
func (c *CA) String() string { return "gateway.CA(" + c.cert.Subject.CommonName + ")" }

// GoString keeps %#v from printing the private keys.
func (c *CA) GoString() string { return c.String() }

// LogValue keeps slog from printing the private keys.
func (c *CA) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c *CA) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// Leaf returns a certificate for name (a DNS name or an IP literal), from
// the cache or freshly signed. Safe for concurrent use; concurrent misses
// for one name sign once.
//
// Names are matched case-insensitively and without a trailing dot. The
// chain holds the leaf only: clients already have the CA, and sending it
// would only cost bytes.
func (c *CA) Leaf(name string) (*tls.Certificate, error) {
	host, ip, err := parseLeafName(name)
	if err != nil {
		return nil, err
	}
	now := c.now()

	c.mu.Lock()
	if el, ok := c.leaves[host]; ok {
		e := el.Value.(*leafEntry)
		if now.Before(e.renewAt) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.cert, nil
		}
	}
	if call, ok := c.inflight[host]; ok {
		call.dups++
		c.mu.Unlock()
		<-call.done
		return call.cert, call.err
	}
	call := &leafCall{done: make(chan struct{})}
	c.inflight[host] = call
	c.mu.Unlock()

	// finish runs even if signing panics, so waiters are never stuck.
	defer c.finishLeaf(host, call)
	call.err = errLeafSignPanicked // replaced unless signLeaf panics
	call.cert, call.renewAt, call.err = c.signLeaf(host, ip, now)
	return call.cert, call.err
}

// finishLeaf caches call's result and releases the callers waiting for it.
func (c *CA) finishLeaf(host string, call *leafCall) {
	c.mu.Lock()
	delete(c.inflight, host)
	if call.err == nil {
		e := &leafEntry{name: host, cert: call.cert, renewAt: call.renewAt}
		if el, ok := c.leaves[host]; ok {
			el.Value = e
			c.lru.MoveToFront(el)
		} else {
			c.leaves[host] = c.lru.PushFront(e)
		}
		for c.lru.Len() > c.maxLeaves {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.leaves, old.Value.(*leafEntry).name)
		}
	}
	c.mu.Unlock()
	close(call.done)
}

// signLeaf signs a leaf for host (or ip, if valid) and says when to renew it.
func (c *CA) signLeaf(host string, ip netip.Addr, now time.Time) (*tls.Certificate, time.Time, error) {
	if c.signHook != nil {
		c.signHook(host)
	}
	// A leaf never claims validity outside its CA's.
	notBefore := now.Add(-caBackdate)
	if notBefore.Before(c.cert.NotBefore) {
		notBefore = c.cert.NotBefore
	}
	notAfter := now.Add(leafLifetime)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, time.Time{}, fmt.Errorf("sign leaf certificate for %q: CA certificate expired on %s; delete %s and %s to make a new CA",
			host, c.cert.NotAfter.UTC().Format(time.DateOnly), CACertFile, CAKeyFile)
	}
	serial, err := caSerial()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign leaf certificate for %q: %w", host, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// No common name, as mkcert: clients match the SAN only, and a
		// CN is limited to 64 bytes where a host name may have 253.
		Subject:     pkix.Name{Organization: []string{caOrganization}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip.IsValid() {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, c.leafKey.Public(), c.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign leaf certificate for %q: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign leaf certificate for %q: %w", host, err)
	}
	c.signs.Add(1)
	renewAt := notAfter.Add(-leafRenewBefore)
	if !now.Before(renewAt) {
		// The CA itself expires within a day: keep this leaf to the end
		// rather than re-signing it on every call.
		renewAt = notAfter
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: c.leafKey, Leaf: leaf}, renewAt, nil
}

// parseLeafName checks that name is a host name or an IP literal and
// returns its canonical form: lower case, no trailing dot, IPs as
// netip.Addr.String gives them. For an IP literal, ip is valid.
func parseLeafName(name string) (host string, ip netip.Addr, err error) {
	// Only something shaped like an IP goes to netip.ParseAddr, whose
	// error allocates, to keep the cache-hit path allocation-free.
	if strings.IndexByte(name, ':') >= 0 || strings.Trim(name, "0123456789.") == "" {
		if a, err := netip.ParseAddr(name); err == nil {
			if a.Zone() != "" {
				return "", netip.Addr{}, fmt.Errorf("%w: %q has an IPv6 zone", ErrInvalidLeafName, name)
			}
			return a.String(), a, nil
		}
	}
	n := name
	if len(n) > 0 && n[len(n)-1] == '.' {
		n = n[:len(n)-1]
	}
	if n == "" {
		return "", netip.Addr{}, fmt.Errorf("%w: %q is empty", ErrInvalidLeafName, name)
	}
	if len(n) > 253 {
		return "", netip.Addr{}, fmt.Errorf("%w: %q is longer than 253 bytes", ErrInvalidLeafName, name)
	}
	// Check every byte before lowering: strings.ToLower would map some
	// non-ASCII letters (the Kelvin sign) to ASCII ones and let them in.
	labelStart, digitsOnly, upper := 0, true, false
	for i := 0; i <= len(n); i++ {
		if i == len(n) || n[i] == '.' {
			label := n[labelStart:i]
			switch {
			case len(label) == 0:
				return "", netip.Addr{}, fmt.Errorf("%w: %q has an empty label", ErrInvalidLeafName, name)
			case len(label) > 63:
				return "", netip.Addr{}, fmt.Errorf("%w: %q has a label longer than 63 bytes", ErrInvalidLeafName, name)
			case label[0] == '-' || label[len(label)-1] == '-':
				return "", netip.Addr{}, fmt.Errorf("%w: %q has a label that starts or ends with a hyphen", ErrInvalidLeafName, name)
			}
			if i == len(n) && digitsOnly {
				// No top-level domain is numeric; such a name is a
				// malformed IP address (1.2.3.999, 127.000.000.001).
				return "", netip.Addr{}, fmt.Errorf("%w: %q is neither a host name nor an IP address", ErrInvalidLeafName, name)
			}
			labelStart, digitsOnly = i+1, true
			continue
		}
		ch := n[i]
		switch {
		case 'a' <= ch && ch <= 'z', ch == '-', ch == '_':
			// Underscores are not valid in host names but occur in
			// practice, and crypto/x509 accepts them in SANs.
			digitsOnly = false
		case 'A' <= ch && ch <= 'Z':
			upper, digitsOnly = true, false
		case '0' <= ch && ch <= '9':
		case ch >= 0x80:
			return "", netip.Addr{}, fmt.Errorf("%w: %q is not ASCII; use its IDNA form (xn--...)", ErrInvalidLeafName, name)
		default:
			return "", netip.Addr{}, fmt.Errorf("%w: %q contains %q", ErrInvalidLeafName, name, rune(ch))
		}
	}
	if upper {
		n = strings.ToLower(n) // all ASCII by now
	}
	return n, netip.Addr{}, nil
}
