package server

import (
	"os"
	"testing"

	"github.com/standin/standin/internal/sandbox/agent"
)

// The sandboxes these tests start run this test binary as their agent.
func TestMain(m *testing.M) {
	agent.Main()
	os.Exit(m.Run())
}
