package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog/internal/refconv"
)

// repoRoot finds the module root (the directory holding go.mod).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// readReference reads the research reference, which CI keeps beside the
// clone (../shared/reference/providers.json from the repository root).
func readReference(tb testing.TB) []byte {
	tb.Helper()
	path := filepath.Join(repoRoot(tb), "..", "shared", "reference", "providers.json")
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read reference data: %v (it must sit at %s)", err, path)
	}
	return b
}

// TestGeneratedUpToDate re-runs the conversion and compares with the
// committed data file and docs/PROVIDERS.md. On failure run
// `go generate ./internal/catalog`.
func TestGeneratedUpToDate(t *testing.T) {
	f, err := refconv.Convert(readReference(t))
	if err != nil {
		t.Fatalf("Convert(reference): %v", err)
	}
	data, err := refconv.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(data), string(providersJSON)); diff != "" {
		t.Errorf("providers.json is stale; run go generate ./internal/catalog (-converted +embedded):\n%s", diff)
	}
	docs, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "PROVIDERS.md"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(refconv.Markdown(f)), string(docs)); diff != "" {
		t.Errorf("docs/PROVIDERS.md is stale; run go generate ./internal/catalog (-converted +file):\n%s", diff)
	}
}

// announced are the providers named when standin was announced.
var announced = []string{
	"openai", "anthropic", "gemini", "xai", "perplexity", "openrouter", "github",
	"gitlab", "vercel", "cloudflare", "sentry", "exa", "firecrawl", "slack",
	"linear", "notion", "asana", "stripe", "resend",
}

func TestProviders(t *testing.T) {
	ps := Providers()
	if len(ps) <= 50 {
		t.Errorf("Providers() has %d entries, want more than 50", len(ps))
	}
	if !slices.IsSortedFunc(ps, func(a, b Provider) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("Providers() is not sorted by id")
	}
	for _, id := range announced {
		if _, ok := Lookup(id); !ok {
			t.Errorf("Lookup(%q) found nothing, want an announced provider", id)
		}
	}
	for _, p := range ps {
		t.Run(p.ID, func(t *testing.T) {
			if p.Name == "" || p.EnvVar == "" || len(p.Formats) == 0 {
				t.Errorf("provider %q: name %q, env var %q, %d formats; want all set", p.ID, p.Name, p.EnvVar, len(p.Formats))
			}
			if err := ValidateHosts(p.Hosts); err != nil {
				t.Errorf("ValidateHosts(%s hosts) = %v, want nil", p.ID, err)
			}
			seen := map[string]bool{}
			for _, f := range p.Formats {
				if seen[f.Name] {
					t.Errorf("format name %q twice: shapes are stored by name", f.Name)
				}
				seen[f.Name] = true
			}
			if got, ok := Lookup(p.ID); !ok || !cmp.Equal(got, p) {
				t.Errorf("Lookup(%q) = %+v, %v; want the Providers() entry", p.ID, got, ok)
			}
		})
	}
	if _, ok := Lookup("nope"); ok {
		t.Errorf("Lookup(%q) found a provider", "nope")
	}
	if _, ok := Lookup("telegram"); ok {
		t.Errorf("Lookup(%q) found an unsupported provider", "telegram")
	}
}

func TestGitHubHosts(t *testing.T) {
	p, ok := Lookup("github")
	if !ok {
		t.Fatal("no github")
	}
	tests := []struct {
		host string
		want client.AuthSlot
	}{
		{"api.github.com", client.AuthSlot{Type: client.SlotBearer}},
		{"uploads.github.com", client.AuthSlot{Type: client.SlotBearer}},
		// git over HTTPS: the token is the password, the client picks the
		// user name (x-access-token for app tokens).
		{"github.com", client.AuthSlot{Type: client.SlotBasic, SecretIn: "password"}},
	}
	for _, tt := range tests {
		got, ok := SlotFor(p.Hosts, tt.host)
		if !ok || got != tt.want {
			t.Errorf("SlotFor(github, %q) = %+v, %v; want %+v", tt.host, got, ok, tt.want)
		}
	}
	// gh sends "Authorization: token ...": an alternative slot.
	wantAPI := []client.AuthSlot{
		{Type: client.SlotBearer},
		{Type: client.SlotHeader, Header: "Authorization", Template: "token {value}"},
	}
	if diff := cmp.Diff(wantAPI, SlotsFor(p.Hosts, "api.github.com")); diff != "" {
		t.Errorf("SlotsFor(github, api.github.com) (-want +got):\n%s", diff)
	}
	if got := p.Formats[0].Prefix; got != "ghp_" {
		t.Errorf("github main format prefix = %q, want ghp_", got)
	}
}

func TestSlotMapping(t *testing.T) {
	tests := []struct {
		provider, host string
		want           client.AuthSlot
	}{
		{"anthropic", "api.anthropic.com", client.AuthSlot{Type: client.SlotHeader, Header: "x-api-key", Template: "{value}"}},
		{"pypi", "upload.pypi.org", client.AuthSlot{Type: client.SlotBasic, Username: "__token__", SecretIn: "password"}},
		{"wandb", "api.wandb.ai", client.AuthSlot{Type: client.SlotBasic, Username: "api", SecretIn: "password"}},
		{"stripe", "api.stripe.com", client.AuthSlot{Type: client.SlotBasic, SecretIn: "username"}},
		{"serpapi", "serpapi.com", client.AuthSlot{Type: client.SlotQuery, Param: "api_key"}},
		{"gitlab", "gitlab.com", client.AuthSlot{Type: client.SlotHeader, Header: "PRIVATE-TOKEN", Template: "{value}"}},
		{"atlassian", "acme.atlassian.net", client.AuthSlot{Type: client.SlotBasic, SecretIn: "password"}},
		{"pagerduty", "api.pagerduty.com", client.AuthSlot{Type: client.SlotHeader, Header: "Authorization", Template: "Token token={value}"}},
		{"discord", "discord.com", client.AuthSlot{Type: client.SlotHeader, Header: "Authorization", Template: "Bot {value}"}},
	}
	for _, tt := range tests {
		p, ok := Lookup(tt.provider)
		if !ok {
			t.Errorf("Lookup(%q) found nothing", tt.provider)
			continue
		}
		if got, ok := SlotFor(p.Hosts, tt.host); !ok || got != tt.want {
			t.Errorf("SlotFor(%s, %q) = %+v, %v; want %+v", tt.provider, tt.host, got, ok, tt.want)
		}
	}
}

func TestProvidersAreCopies(t *testing.T) {
	ps := Providers()
	ps[0].Hosts[0].Host = "evil.example"
	ps[0].Formats[0].Regex = "^$"
	p, _ := Lookup(ps[0].ID)
	p.Hosts[0].Host = "evil.example"
	if again := Providers(); again[0].Hosts[0].Host == "evil.example" || again[0].Formats[0].Regex == "^$" {
		t.Errorf("changing a returned provider changed the catalog")
	}
}

func TestDecodeRejectsUnknownFields(t *testing.T) {
	bad := bytes.Replace(providersJSON, []byte(`"envVar"`), []byte(`"envVarX"`), 1)
	if _, err := decode(bad); err == nil {
		t.Errorf("decode(data with unknown field) = nil error, want one")
	}
}
