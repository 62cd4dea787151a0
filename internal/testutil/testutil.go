// Package testutil holds the few helpers that the tests of several packages
// share: a goroutine-safe output buffer, a fake provider's certificate, and
// the runsc binary the sandbox tests run and the processes it leaves. Only
// tests import it.
package testutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer collects output written from other goroutines (a logger, a
// client's copy loop) while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// UpstreamCAName is the common name of the CA that UpstreamCert makes, for
// tests that check who issued the certificate a client saw.
const UpstreamCAName = "fake public CA"

// UpstreamCert makes a throw-away CA and a server certificate it signs for
// names and ips, as a real provider's public certificate would be. The
// certificate's common name is names[0].
func UpstreamCert(tb testing.TB, names []string, ips ...net.IP) (ca *x509.Certificate, cert tls.Certificate) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: UpstreamCAName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: names, IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return ca, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// RunscProcs lists the host processes whose command line contains root
// (a runtime's state directory), as "PID: command line".
func RunscProcs(tb testing.TB, root string) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var procs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // not a process, or gone
		}
		if cmdline := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmdline, root) {
			procs = append(procs, e.Name()+": "+cmdline)
		}
	}
	return procs
}

// RunscBin is RunscPath for a test, which fails if runsc is not there.
func RunscBin(tb testing.TB) string {
	tb.Helper()
	p, err := RunscPath()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// RunscPath finds bin/runsc at the root of the repository (`make runsc`
// builds it), looking up from the working directory.
func RunscPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "runsc", "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "runsc")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s is missing: run `make runsc` (or `make test`, which builds it)", p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (with tools/runsc) not found above the working directory")
		}
		dir = parent
	}
}
