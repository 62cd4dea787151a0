package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
)

var bearer = client.AuthSlot{Type: client.SlotBearer}

func TestValidateHosts(t *testing.T) {
	one := func(host string, a client.AuthSlot) []client.HostAuth {
		return []client.HostAuth{{Host: host, Auth: a}}
	}
	many := func(n int) []client.HostAuth {
		var hs []client.HostAuth
		for i := range n {
			hs = append(hs, client.HostAuth{Host: fmt.Sprintf("h%d.example.com", i), Auth: bearer})
		}
		return hs
	}
	tests := []struct {
		name    string
		hosts   []client.HostAuth
		wantErr string // substring; "" means valid
	}{
		{"exact", one("api.example.com", bearer), ""},
		{"wildcard", one("*.example.com", bearer), ""},
		{"wildcard below a registrable domain", one("*.eu.example.co.uk", bearer), ""},
		{"single label", one("vault", bearer), ""},
		{"IPv4 address", one("10.1.2.3", bearer), ""},
		{"sixteen", many(16), ""},
		{"none", nil, "at least one host"},
		{"seventeen", many(17), "at most 16"},
		{"wildcard on com", one("*.com", bearer), `"com" is a public suffix`},
		{"wildcard on co.uk", one("*.co.uk", bearer), `"co.uk" is a public suffix`},
		{"wildcard on github.io", one("*.github.io", bearer), `"github.io" is a public suffix`},
		{"wildcard on supabase.co", one("*.supabase.co", bearer), "public suffix"},
		{"bare star", one("*", bearer), "whole first label"},
		{"inner star", one("api.*.example.com", bearer), "whole first label"},
		{"partial star", one("api*.example.com", bearer), "whole first label"},
		{"scheme", one("https://api.example.com", bearer), "without scheme or path"},
		{"path", one("api.example.com/v1", bearer), "without scheme or path"},
		{"port", one("api.example.com:443", bearer), "without scheme or path"},
		{"upper case", one("API.example.com", bearer), `use "api.example.com"`},
		{"IPv4 wildcard", one("*.127.0.0.1", bearer), "not an IP address"},
		{"IPv4 with zeros", one("127.000.0.1", bearer), "not an IP address"},
		{"IPv6", one("::1", bearer), "without scheme or path"},
		{"trailing dot", one("api.example.com.", bearer), "trailing dot"},
		{"empty label", one("api..example.com", bearer), "dot-separated part"},
		{"leading hyphen", one("-api.example.com", bearer), "dot-separated part"},
		{"underscore", one("api_x.example.com", bearer), `character '_'`},
		{"empty", one("", bearer), "empty host"},
		{"duplicate", []client.HostAuth{{Host: "a.example.com", Auth: bearer}, {Host: "a.example.com", Auth: bearer}}, "same host and slot"},
		{"alternative slots", []client.HostAuth{
			{Host: "a.example.com", Auth: bearer},
			{Host: "a.example.com", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "Authorization", Template: "token {value}"}},
		}, ""},

		{"bearer other header", one("a.example.com", client.AuthSlot{Type: client.SlotBearer, Header: "X-Auth"}), ""},
		{"bearer with template", one("a.example.com", client.AuthSlot{Type: client.SlotBearer, Template: "x {value}"}), "template is not used"},
		{"header", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "X-Api-Key", Template: "{value}"}), ""},
		{"header without name", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Template: "{value}"}), "needs a header name"},
		{"header without value", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "X-Key", Template: "key"}), "exactly once (found 0)"},
		{"header value twice", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "X-Key", Template: "{value}{value}"}), "exactly once (found 2)"},
		{"header bad name", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "X Key", Template: "{value}"}), "not a valid header name"},
		{"header reserved", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "Host", Template: "{value}"}), "managed by the gateway"},
		{"header newline", one("a.example.com", client.AuthSlot{Type: client.SlotHeader, Header: "X-Key", Template: "{value}\r\nX: y"}), "control characters"},
		{"basic", one("a.example.com", client.AuthSlot{Type: client.SlotBasic}), ""},
		{"basic fixed user", one("a.example.com", client.AuthSlot{Type: client.SlotBasic, Username: "__token__", SecretIn: "password"}), ""},
		{"basic secret as user", one("a.example.com", client.AuthSlot{Type: client.SlotBasic, SecretIn: "username"}), ""},
		{"basic secret as fixed user", one("a.example.com", client.AuthSlot{Type: client.SlotBasic, SecretIn: "username", Username: "api"}), "username is fixed"},
		{"basic bad secretIn", one("a.example.com", client.AuthSlot{Type: client.SlotBasic, SecretIn: "both"}), `secretIn "both"`},
		{"basic colon user", one("a.example.com", client.AuthSlot{Type: client.SlotBasic, Username: "a:b"}), "':'"},
		{"query", one("a.example.com", client.AuthSlot{Type: client.SlotQuery, Param: "api_key"}), ""},
		{"query without param", one("a.example.com", client.AuthSlot{Type: client.SlotQuery}), "needs a param"},
		{"query bad param", one("a.example.com", client.AuthSlot{Type: client.SlotQuery, Param: "a&b"}), `param "a&b"`},
		{"query with header", one("a.example.com", client.AuthSlot{Type: client.SlotQuery, Param: "k", Header: "X"}), "header is not used"},
		{"no type", one("a.example.com", client.AuthSlot{}), "auth type missing"},
		{"unknown type", one("a.example.com", client.AuthSlot{Type: "body"}), `unknown auth type "body"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateHosts(tt.hosts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateHosts(%v) = %v, want nil", tt.hosts, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateHosts(%v) = %v, want an error containing %q", tt.hosts, err, tt.wantErr)
			case err != nil && !errors.Is(err, ErrInvalidHosts):
				t.Errorf("ValidateHosts(%v) = %v, want it to wrap ErrInvalidHosts", tt.hosts, err)
			}
		})
	}
}

func TestHostErrorNamesEntry(t *testing.T) {
	err := ValidateHosts([]client.HostAuth{{Host: "a.example.com", Auth: bearer}, {Host: "*.com", Auth: bearer}})
	var he *HostError
	if !errors.As(err, &he) || he.Index != 1 || he.Host != "*.com" {
		t.Fatalf("ValidateHosts = %v, want a *HostError for entry 1", err)
	}
	if !strings.HasPrefix(err.Error(), `host 2 ("*.com"): `) {
		t.Errorf("error %q does not name the entry", err)
	}
}

func TestSlotFor(t *testing.T) {
	header := client.AuthSlot{Type: client.SlotHeader, Header: "X-Key", Template: "{value}"}
	query := client.AuthSlot{Type: client.SlotQuery, Param: "key"}
	basic := client.AuthSlot{Type: client.SlotBasic}
	hosts := []client.HostAuth{
		{Host: "*.example.com", Auth: header},
		{Host: "api.example.com", Auth: bearer},
		{Host: "api.example.com", Auth: basic},
		{Host: "*.eu.example.com", Auth: query},
	}
	tests := []struct {
		host string
		want []client.AuthSlot
	}{
		{"api.example.com", []client.AuthSlot{bearer, basic}}, // exact beats wildcard
		{"API.Example.com.", []client.AuthSlot{bearer, basic}},
		{"www.example.com", []client.AuthSlot{header}},
		{"a.b.example.com", []client.AuthSlot{header}}, // several labels
		{"x.eu.example.com", []client.AuthSlot{query}}, // longest wildcard
		{"eu.example.com", []client.AuthSlot{header}},  // *.eu.example.com does not match itself
		{"example.com", nil},                           // nor does *.example.com
		{"badexample.com", nil},                        // label boundary
		{"api.example.com.evil.net", nil},              // suffix only
		{"", nil},
	}
	for _, tt := range tests {
		got := SlotsFor(hosts, tt.host)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("SlotsFor(%q) (-want +got):\n%s", tt.host, diff)
		}
		slot, ok := SlotFor(hosts, tt.host)
		if ok != (len(tt.want) > 0) || (ok && slot != tt.want[0]) {
			t.Errorf("SlotFor(%q) = %+v, %v; want the first of %+v", tt.host, slot, ok, tt.want)
		}
	}
}

func TestMatchHost(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "www.example.com", false},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "a..example.com", false},
		{"*.example.com", "notexample.com", false},
		{"*", "anything", false},
	}
	for _, tt := range tests {
		if got := matchHost(tt.pattern, tt.host); got != tt.want {
			t.Errorf("matchHost(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

// FuzzValidateHosts: ValidateHosts never panics, and a host it accepts is
// lower case, has no scheme, path or port, and matches itself (or, for a
// wildcard, a name below it).
func FuzzValidateHosts(f *testing.F) {
	for _, h := range []string{"api.example.com", "*.example.com", "*.co.uk", "A.b", "1.2.3.4", "x:1", "*.*.a"} {
		f.Add(h, "bearer", "", "")
	}
	f.Add("a.example.com", "header", "X-Key", "t {value}")
	f.Add("a.example.com", "query", "", "")
	f.Fuzz(func(t *testing.T, host, typ, header, template string) {
		hosts := []client.HostAuth{{Host: host, Auth: client.AuthSlot{Type: typ, Header: header, Template: template}}}
		if ValidateHosts(hosts) != nil {
			return
		}
		if strings.ToLower(host) != host || strings.ContainsAny(host, ":/ ") {
			t.Errorf("ValidateHosts accepted host %q", host)
		}
		probe := host
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			probe = "x." + rest
		}
		if _, ok := SlotFor(hosts, probe); !ok {
			t.Errorf("SlotFor(%q, %q) found no slot", host, probe)
		}
	})
}
