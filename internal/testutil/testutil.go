// Package testutil holds the few helpers that the tests of several packages
// share: a goroutine-safe output buffer, a loopback TCP server, a fake
// provider's certificate, the process's CPU time, the network interfaces of
// a namespace, and the runsc binary the sandbox tests run and the host
// processes they leave. Only tests import it.
package testutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// CPUTime is the CPU time the process has used, user and system, for
// benchmarks that report CPU per operation.
func CPUTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ServeTCP listens on a free port of 127.0.0.1 and runs handle for each
// connection in a goroutine of its own, closing the connection when handle
// returns. The listener closes when the test ends.
func ServeTCP(tb testing.TB, handle func(net.Conn)) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln
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

// WriteCA writes ca as PEM to a file under tb.TempDir() and returns its
// path, for a config that takes the CA to verify an upstream with.
func WriteCA(tb testing.TB, ca *x509.Certificate) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// NetInterfaces lists, sorted, the network interfaces of the calling
// thread's network namespace (run it inside netns.Do).
func NetInterfaces() ([]string, error) {
	b, err := os.ReadFile("/proc/thread-self/net/dev")
	if err != nil {
		return nil, err
	}
	var names []string
	// Two header lines, then "  name: counters" a line.
	for _, line := range strings.Split(string(b), "\n")[2:] {
		if name, _, ok := strings.Cut(line, ":"); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	slices.Sort(names)
	return names, nil
}

// RunscProcs lists the host processes whose command line contains root
// (a runtime's state directory), as "PID: command line".
func RunscProcs(tb testing.TB, root string) []string {
	tb.Helper()
	return Processes(tb, func(_, cmdline string) bool { return strings.Contains(cmdline, root) })
}

// Processes returns the host's processes that keep accepts, given their
// pid and command line (arguments joined by spaces; empty for a zombie), as
// "PID: command line".
func Processes(tb testing.TB, keep func(pid, cmdline string) bool) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var procs []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue // not a process
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone
		}
		cmdline := strings.TrimSuffix(strings.ReplaceAll(string(b), "\x00", " "), " ")
		if keep(e.Name(), cmdline) {
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
