// Package catalog knows the services standin can hold credentials for: for
// each provider its hosts, the auth slot per host (where the credential goes
// in a request), and the shapes of its keys, so stand-ins look real.
//
// The data is embedded (providers.json in this package, our own format);
// nothing is read at run time.
package catalog

import (
	"io"

	"github.com/standin/standin/client"
)

// Provider is one catalog entry.
type Provider struct {
	ID           string
	Name         string
	EnvVar       string
	OtherEnvVars []string
	Hosts        []client.HostAuth
	// Formats are the key shapes, main format first.
	Formats []Format
	// Unsupported lists hosts standin cannot serve and why, e.g.
	// {"api.telegram.org", "token in URL path"}.
	Unsupported []Unsupported
}

// Unsupported is a host (or a whole provider, Host "*") standin cannot serve.
type Unsupported struct{ Host, Reason string }

// Format is one key shape of a provider.
type Format struct {
	Name   string
	Prefix string
	// Regex is the anchored pattern every real key and every stand-in of
	// this format matches.
	Regex string
	// Checksum names the checksum algorithm ("" for none): github-crc32-base62,
	// cloudflare-crc32-hex, atlassian-crc32-hex, grafana-crc32-le-hex,
	// gitlab-glpat-crc32-base36, ...
	Checksum string
}

// Providers returns every provider standin supports at least one host of,
// sorted by id.
func Providers() []Provider { panic("TODO") }

// Lookup finds a provider by id.
func Lookup(id string) (Provider, bool) { panic("TODO") }

// UnsupportedProviders lists providers of the reference data with no
// servable host, with the reason.
func UnsupportedProviders() []Unsupported { panic("TODO") }

// Shape is what a stand-in is minted from: a provider's format, or for a
// custom secret a shape read off the value (prefix, alphabet, length). It is
// stored (as JSON) with each binding so the stand-in never changes shape
// when the secret is rotated.
type Shape struct {
	Provider string `json:"provider,omitempty"`
	Format   string `json:"format,omitempty"`
	// Length is the wanted total length where the format allows several
	// (0: the format's default).
	Length int `json:"length,omitempty"`
	// Custom shapes: prefix kept from the value, alphabet of the rest.
	Prefix   string `json:"prefix,omitempty"`
	Alphabet string `json:"alphabet,omitempty"`
}

// ShapeFor picks the stand-in shape for value stored under provider p (nil
// for a custom secret). With a provider: the first format whose regex the
// value matches, with the value's length where the format allows several;
// if none matches, the provider's main format. Custom: the value's own shape.
func ShapeFor(p *Provider, value []byte) Shape { panic("TODO") }

// Mint makes a random stand-in of shape s from r (checksums computed).
func (s Shape) Mint(r io.Reader) (string, error) { panic("TODO") }

// Valid reports whether token has shape s (regex and checksum).
func (s Shape) Valid(token string) bool { panic("TODO") }

// FormatName is a human name for the shape ("classic personal access
// token", or "custom").
func (s Shape) FormatName() string { panic("TODO") }

// MaxHosts is the most host entries a secret may have.
const MaxHosts = 16

// ValidateHosts checks a secret's host list: 1..16 entries, each host exact
// or "*.domain" (never a wildcard on a public suffix such as *.com or
// *.co.uk), each slot complete (header template contains {value} once, query
// has a param, ...). Errors name the entry and say what to do.
func ValidateHosts(hosts []client.HostAuth) error { panic("TODO") }

// SlotFor returns the auth slot for host: an exact entry beats a wildcard.
func SlotFor(hosts []client.HostAuth, host string) (client.AuthSlot, bool) { panic("TODO") }
