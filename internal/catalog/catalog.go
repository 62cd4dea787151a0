// Package catalog knows the services standin can hold credentials for: for
// each provider its hosts, the auth slot per host (where the credential goes
// in a request), and the shapes of its keys, so stand-ins look real.
//
// The data is embedded (providers.json in this package, our own format);
// nothing is read at run time. It is generated from the research reference
// by internal/gen (go generate), which also writes docs/PROVIDERS.md; the
// conversion rules (which slots are servable, checksums, typical lengths)
// live in internal/refconv.
//
// Invariants the tests hold:
//   - every provider's host list passes ValidateHosts; a host may repeat
//     with alternative slots (GitHub takes "Bearer" and "token"), and
//     SlotsFor returns them all;
//   - every stand-in minted for a format matches the format's regex and
//     checksum (Shape.Valid), and has the length asked for where the format
//     allows it;
//   - a Shape's JSON form is stable: it is stored with each binding;
//   - no more of a secret's value than a custom shape's short prefix is kept.
package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog/internal/datafile"
)

// The data file is generated from the research reference by internal/gen;
// the tests check it is up to date.
//
//go:generate go run ./internal/gen -out providers.json -docs ../../docs/PROVIDERS.md ../../../shared/reference/providers.json
//go:embed providers.json
var providersJSON []byte

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
type Unsupported struct {
	Host, Reason string
	// Provider is the provider's id (added so UnsupportedProviders can say
	// which provider each entry is about).
	Provider string
}

// Format is one key shape of a provider.
type Format struct {
	Name   string
	Prefix string
	// Regex is the anchored pattern every real key and every stand-in of
	// this format matches.
	Regex string
	// Checksum names the checksum algorithm ("" for none): github-crc32-base62,
	// cloudflare-crc32-hex, atlassian-crc32-hex, grafana-crc32-le-hex,
	// gitlab-glpat-crc32-base36, ... It also names structure a stand-in must
	// have to pass for real: pypi-macaroon-v2 (a decodable macaroon),
	// discord-snowflake-base64 (a numeric id in the first segment).
	Checksum string
	// Length is the typical total length of a real key, which a stand-in
	// gets when the shape asks for no other length.
	Length int
}

// Providers returns every provider standin supports at least one host of,
// sorted by id.
func Providers() []Provider {
	d := loaded()
	out := make([]Provider, len(d.providers))
	for i, p := range d.providers {
		out[i] = p.clone()
	}
	return out
}

// Lookup finds a provider by id.
func Lookup(id string) (Provider, bool) {
	p, ok := lookup(id)
	if !ok {
		return Provider{}, false
	}
	return p.clone(), true
}

// lookup is Lookup without the copy, for read-only use inside the package.
func lookup(id string) (*Provider, bool) {
	d := loaded()
	i, ok := slices.BinarySearchFunc(d.providers, id, func(p Provider, id string) int {
		return strings.Compare(p.ID, id)
	})
	if !ok {
		return nil, false
	}
	return &d.providers[i], true
}

// UnsupportedProviders lists providers of the reference data with no
// servable host, with the reason.
//
// Each entry has Host "*", Provider the provider's id and Reason every
// distinct reason its hosts have, joined by "; ".
func UnsupportedProviders() []Unsupported {
	return slices.Clone(loaded().unsupported)
}

// catalogData is the decoded data file.
type catalogData struct {
	providers   []Provider // sorted by id
	unsupported []Unsupported
}

// loaded decodes the embedded data once. The data is tested, so a failure
// here is a build defect, not a run-time condition.
var loaded = sync.OnceValue(func() *catalogData {
	d, err := decode(providersJSON)
	if err != nil {
		panic(fmt.Sprintf("catalog: embedded providers.json: %v", err))
	}
	return d
})

func decode(data []byte) (*catalogData, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f datafile.File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	d := &catalogData{}
	for _, fp := range f.Providers {
		p := Provider{
			ID:           fp.ID,
			Name:         fp.Name,
			EnvVar:       fp.EnvVar,
			OtherEnvVars: fp.OtherEnvVars,
			Hosts:        fp.Hosts,
		}
		for _, ff := range fp.Formats {
			p.Formats = append(p.Formats, Format{
				Name:     ff.Name,
				Prefix:   ff.Prefix,
				Regex:    ff.Regex,
				Checksum: ff.Checksum,
				Length:   ff.Length,
			})
		}
		var reasons []string
		for _, u := range fp.Unsupported {
			p.Unsupported = append(p.Unsupported, Unsupported{Host: u.Host, Reason: u.Reason, Provider: fp.ID})
			if !slices.Contains(reasons, u.Reason) {
				reasons = append(reasons, u.Reason)
			}
		}
		if len(p.Hosts) == 0 {
			d.unsupported = append(d.unsupported, Unsupported{Host: "*", Reason: strings.Join(reasons, "; "), Provider: fp.ID})
			continue
		}
		d.providers = append(d.providers, p)
	}
	slices.SortFunc(d.providers, func(a, b Provider) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.unsupported, func(a, b Unsupported) int { return strings.Compare(a.Provider, b.Provider) })
	return d, nil
}

// clone copies p so callers cannot change the catalog.
func (p Provider) clone() Provider {
	p.OtherEnvVars = slices.Clone(p.OtherEnvVars)
	p.Hosts = slices.Clone(p.Hosts)
	p.Formats = slices.Clone(p.Formats)
	p.Unsupported = slices.Clone(p.Unsupported)
	return p
}
