// Package datafile defines catalog/providers.json, the catalog's own data
// format. The converter (refconv) writes it and the catalog reads it, so
// both sides share these types and cannot drift apart.
package datafile

import "github.com/standin/standin/client"

// File is the whole of providers.json.
type File struct {
	// Note says where the data comes from; it is not read.
	Note      string     `json:"note"`
	Providers []Provider `json:"providers"`
}

// Provider is one service. A provider with no Hosts is one standin cannot
// serve; Unsupported says why.
type Provider struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	EnvVar       string            `json:"envVar"`
	OtherEnvVars []string          `json:"otherEnvVars,omitempty"`
	Hosts        []client.HostAuth `json:"hosts,omitempty"`
	Formats      []Format          `json:"formats,omitempty"`
	Unsupported  []Unsupported     `json:"unsupported,omitempty"`
}

// Format is one key shape.
type Format struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
	// Regex is anchored (^...$).
	Regex    string `json:"regex"`
	Checksum string `json:"checksum,omitempty"`
	// Length is the typical total length of a real key: what a stand-in
	// gets when nothing else asks for a length.
	Length int `json:"length"`
}

// Unsupported is a host standin cannot serve, with the reason.
type Unsupported struct {
	Host   string `json:"host"`
	Reason string `json:"reason"`
}
