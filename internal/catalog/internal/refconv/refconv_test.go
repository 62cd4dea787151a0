package refconv

import (
	"strings"
	"testing"

	"github.com/standin/standin/client"
)

func TestConvertAuth(t *testing.T) {
	tests := []struct {
		name       string
		in         refAuth
		want       client.AuthSlot
		wantReason string
		wantErr    bool
	}{
		{"bearer", refAuth{Type: "bearer", Header: "Authorization", Template: "Bearer {secret}"}, client.AuthSlot{Type: "bearer"}, "", false},
		{"bearer elsewhere is a header", refAuth{Type: "bearer", Header: "X-Token", Template: "Bearer {secret}"}, client.AuthSlot{Type: "header", Header: "X-Token", Template: "Bearer {value}"}, "", false},
		{"header", refAuth{Type: "header", Header: "x-api-key", Template: "{secret}"}, client.AuthSlot{Type: "header", Header: "x-api-key", Template: "{value}"}, "", false},
		{"header without secret", refAuth{Type: "header", Header: "x", Template: "k"}, client.AuthSlot{}, "", true},
		{"basic fixed user", refAuth{Type: "basic", Username: "__token__", Password: "{secret}"}, client.AuthSlot{Type: "basic", Username: "__token__", SecretIn: "password"}, "", false},
		{"basic placeholder user", refAuth{Type: "basic", Username: "{github username}", Password: "{secret}"}, client.AuthSlot{Type: "basic", SecretIn: "password"}, "", false},
		{"basic secret as user", refAuth{Type: "basic", Username: "{secret}", Password: ""}, client.AuthSlot{Type: "basic", SecretIn: "username"}, "", false},
		{"basic without secret", refAuth{Type: "basic", Username: "a", Password: "b"}, client.AuthSlot{}, "", true},
		{"query", refAuth{Type: "query", Param: "key"}, client.AuthSlot{Type: "query", Param: "key"}, "", false},
		{"body", refAuth{Type: "body"}, client.AuthSlot{}, ReasonBody, false},
		{"path", refAuth{Type: "path"}, client.AuthSlot{}, ReasonPath, false},
		{"sigv4", refAuth{Type: "sigv4"}, client.AuthSlot{}, ReasonSigV4, false},
		{"oauth", refAuth{Type: "oauth_jwt_exchange"}, client.AuthSlot{}, ReasonOAuthJWT, false},
		{"unknown", refAuth{Type: "mtls"}, client.AuthSlot{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := convertAuth(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want || reason != tt.wantReason {
				t.Errorf("convertAuth(%+v) = %+v, %q, %v; want %+v, %q, error %v", tt.in, got, reason, err, tt.want, tt.wantReason, tt.wantErr)
			}
		})
	}
}

func TestHostProblem(t *testing.T) {
	tests := map[string]string{
		"api.example.com":                 "",
		"*.atlassian.net":                 "",
		"*.supabase.co":                   ReasonPublicSuffix,
		"*.com":                           ReasonPublicSuffix,
		"bedrock-runtime.*.amazonaws.com": ReasonInnerWildcard,
	}
	for host, want := range tests {
		if got := hostProblem(host); got != want {
			t.Errorf("hostProblem(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name, ref, wantErr string
	}{
		{"not JSON", `{`, "parse reference"},
		{"unknown checksum", `[{"id":"x","name":"X","env_var":"X_KEY","hosts":[{"host":"a.example.com","auth":{"type":"bearer","header":"Authorization","template":"Bearer {secret}"}}],
			"formats":[{"name":"k","prefix":"k_","length":5,"checksum":"CRC16 of the body","example_regex":"^k_[a-z]{3}$"}]}]`, "add the format to checksums"},
		{"unanchored regex", `[{"id":"x","name":"X","env_var":"X_KEY","hosts":[{"host":"a.example.com","auth":{"type":"bearer","header":"Authorization","template":"Bearer {secret}"}}],
			"formats":[{"name":"k","prefix":"k_","length":5,"checksum":null,"example_regex":"k_[a-z]{3}"}]}]`, "not anchored"},
		{"stale tables", `[]`, "which the reference lacks"},
	}
	for _, tt := range tests {
		if _, err := Convert([]byte(tt.ref)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Convert = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}
