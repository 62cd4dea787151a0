package catalog

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// This file records what standin cannot serve of the reference data, and
// why. A change here is a change in what users can do: say so in the
// commit.

func TestUnsupportedProviders(t *testing.T) {
	want := []Unsupported{
		{Provider: "aws", Host: "*", Reason: "AWS SigV4 request signing"},
		// Hosts are bedrock-runtime.*.amazonaws.com: the region sits in the
		// middle, which a host pattern cannot express.
		{Provider: "aws-bedrock", Host: "*", Reason: "wildcard inside the host name: add the regional host you use instead"},
		{Provider: "gcp-service-account", Host: "*", Reason: "OAuth JWT exchange"},
		// myshopify.com is on the public suffix list: each shop is another
		// owner.
		{Provider: "shopify", Host: "*", Reason: "wildcard on a public suffix: every name below it is a different customer; add your own host instead"},
		{Provider: "telegram", Host: "*", Reason: "token in URL path"},
	}
	if diff := cmp.Diff(want, UnsupportedProviders()); diff != "" {
		t.Errorf("UnsupportedProviders() (-want +got):\n%s", diff)
	}
}

func TestUnsupportedHostsOfSupportedProviders(t *testing.T) {
	want := map[string][]Unsupported{
		"discord": {
			{Host: "gateway.discord.gg", Reason: "credential in request body"},
			// Webhook URLs; the bot API on the same host is served.
			{Host: "discord.com", Reason: "token in URL path"},
		},
		"dockerhub": {{Host: "hub.docker.com", Reason: "credential in request body"}},
		"nvidia":    {{Host: "api.ngc.nvidia.com", Reason: "credential in request body"}},
		"pagerduty": {{Host: "events.pagerduty.com", Reason: "credential in request body"}},
		"slack":     {{Host: "hooks.slack.com", Reason: "token in URL path"}},
		// supabase.co is a public suffix; api.supabase.com is served.
		"supabase": {{Host: "*.supabase.co", Reason: "wildcard on a public suffix: every name below it is a different customer; add your own host instead"}},
	}
	got := map[string][]Unsupported{}
	for _, p := range Providers() {
		for _, u := range p.Unsupported {
			if u.Provider != p.ID {
				t.Errorf("provider %q: unsupported entry names provider %q", p.ID, u.Provider)
			}
			u.Provider = ""
			got[p.ID] = append(got[p.ID], u)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unsupported hosts (-want +got):\n%s", diff)
	}
}

func TestSupportedCount(t *testing.T) {
	// 75 reference providers, 5 unsupported.
	if got, want := len(Providers()), 70; got != want {
		t.Errorf("len(Providers()) = %d, want %d", got, want)
	}
}
