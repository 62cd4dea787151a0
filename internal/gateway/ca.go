package gateway

import (
	"crypto/tls"
	"crypto/x509"
)

// CA is standin's interception CA: an ECDSA P-256 root that signs a leaf per
// host name on demand. Leaves share one key pair generated at start, so
// minting a leaf for a new host is one signature, no key generation; signed
// leaves are kept in an LRU cache.
type CA struct{}

// LoadOrCreateCA loads dir/ca.pem and dir/ca.key, creating them on first
// start (key mode 0400, cert 0644). It refuses a key file readable by group
// or others, saying what to do.
func LoadOrCreateCA(dir string) (*CA, error) { panic("TODO") }

// CertPEM is the CA certificate, PEM encoded, for the sandbox's trust store
// and `standin ca export`.
func (c *CA) CertPEM() []byte { panic("TODO") }

// Certificate is the parsed CA certificate.
func (c *CA) Certificate() *x509.Certificate { panic("TODO") }

// Leaf returns a certificate for name (a DNS name or an IP literal), from
// the cache or freshly signed. Safe for concurrent use; concurrent misses
// for one name sign once.
func (c *CA) Leaf(name string) (*tls.Certificate, error) { panic("TODO") }
