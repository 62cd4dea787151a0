package server

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		doc   string
		field string // the ConfigError's field; "" for a parse error
	}{
		{`{"version": 2}`, "version"},
		{`{"listen": "0.0.0.0:8720"}`, "listen"},
		{`{"listen": "8720"}`, "listen"},
		{`{"gateway": {"listen": "10.0.0.1:8721"}}`, "gateway.listen"},
		{`{"gateway": {"dialGuard": ["10.0.0.0/33"]}}`, "gateway.dialGuard"},
		{`{"gateway": {"hosts": {"api.openai.com": "nowhere"}}}`, "gateway.hosts"},
		{`{"gateway": {"resolver": "dns.example.com:53"}}`, "gateway.resolver"},
		{`{"gateway": {"resolver": "127.0.0.1"}}`, "gateway.resolver"},
		{`{"runtime": "docker"}`, "runtime"},
		{`{"runscPath": "bin/runsc"}`, "runscPath"},
		{`{"maxFlows": -1}`, "maxFlows"},
		{`{"maxFlows": 100000}`, "maxFlows"},
		{`{"pool": -1}`, "pool"},
		{`{"pool": 1000}`, "pool"},
		{`{"pool": 2, "runtime": "none"}`, "pool"},
		{`{"log": {"format": "xml"}}`, "log.format"},
		{`{"log": {"level": "loud"}}`, "log.level"},
		{`{"listne": "127.0.0.1:1"}`, ""},
		{"{\n\"version\": 1,\n}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.doc))
			if err == nil {
				c.DataDir = t.TempDir()
				err = c.Validate()
			}
			var ce *ConfigError
			switch {
			case err == nil:
				t.Fatalf("config %s accepted, want an error", tt.doc)
			case tt.field == "" && errors.As(err, &ce):
				t.Fatalf("config %s: %v, want a parse error", tt.doc, err)
			case tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field):
				t.Fatalf("config %s: %v, want an error naming %s", tt.doc, err, tt.field)
			}
		})
	}
}

func TestParseConfigGood(t *testing.T) {
	doc := `{"version": 1, "listen": "off", "runtime": "none",
		"gateway": {"listen": "127.0.0.1:0", "hosts": {"api.openai.com": "127.0.0.1:8443"},
		"dialGuard": ["127.0.0.0/8"], "resolver": "127.0.0.1:5353"}}`
	c, err := ParseConfig(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = t.TempDir()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if c.Gateway.Resolver != "127.0.0.1:5353" {
		t.Errorf("gateway.resolver = %q, want 127.0.0.1:5353", c.Gateway.Resolver)
	}
}
