package gvisor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/standin/standin/internal/sandbox/agent"
)

// TestAgentNextTo: the runtime runs the standin-agent beside the
// executable only if it speaks this build's protocol; a stale one (from an
// older `make build`) is passed over with a warning, for the executable
// itself, which always matches.
func TestAgentNextTo(t *testing.T) {
	for _, tt := range []struct {
		name   string
		agent  string // script body of standin-agent; "" for none
		useOwn bool   // the agent is the sibling
		warn   bool
	}{
		{"none", "", false, false},
		{"current", fmt.Sprintf("echo %d", agent.Protocol), true, false},
		{"stale", fmt.Sprintf("echo %d", agent.Protocol+1), false, true},
		{"not an agent", "exit 2", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, "standin")
			sibling := filepath.Join(dir, AgentName)
			if tt.agent != "" {
				if err := os.WriteFile(sibling, []byte("#!/bin/sh\n"+tt.agent+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			want := exe
			if tt.useOwn {
				want = sibling
			}
			got, warn := agentNextTo(exe)
			if got != want || (warn != nil) != tt.warn {
				t.Errorf("agentNextTo = %q, %v; want %q, warning %v", got, warn, want, tt.warn)
			}
		})
	}
}
