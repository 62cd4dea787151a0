package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestArgValueNotEchoed: a user who passes a credential as an argument
// (instead of on stdin) gets a usage error that does not print it back, so
// it does not end up in terminal scrollback, CI logs or screen shares.
func TestArgValueNotEchoed(t *testing.T) {
	t.Setenv("STANDIN_DATA_DIR", t.TempDir())
	const v = "ghp_LEAKCANARYx9Qm2Lp7Rk4Tz8Vb1Nc6Wd3Hf5"
	tests := []struct {
		name string
		args []string
	}{
		{"create value as second arg", []string{"secret", "create", "gh", v, "--provider", "github"}},
		{"create value after flags", []string{"secret", "create", "gh", "--provider", "github", v}},
		{"rotate value as arg", []string{"secret", "rotate", "gh", v}},
		{"value as host auth", []string{"secret", "create", "gh", "--host", "api.example.com=" + v}},
		{"value as auth", []string{"secret", "create", "gh", "--host", "api.example.com", "--auth", v}},
		{"value as bool flag", []string{"secret", "create", "gh", "--provider", "github", "--json=" + v}},
		{"value as int flag", []string{"secret", "activity", "gh", "--limit=" + v}},
		{"value as binding", []string{"sandbox", "attach", "box", v}},
		{"value as since", []string{"secret", "activity", "gh", "--since", v}},
		{"value as command", []string{v}},
		{"value as subcommand", []string{"secret", v}},
		{"value as admin subcommand", []string{"admin", v}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), tt.args, &IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code == 0 {
				t.Errorf("Main(%q) = 0, want a usage error", tt.name)
			}
			if errOut.Len() == 0 {
				t.Errorf("Main(%q) printed no error", tt.name)
			}
			for where, b := range map[string][]byte{"stdout": out.Bytes(), "stderr": errOut.Bytes()} {
				if bytes.Contains(b, []byte("LEAKCANARY")) {
					t.Errorf("Main(%q) %s holds the value: %q", tt.name, where, b)
				}
			}
		})
	}
}
