package server

import (
	"os"
	"testing"

	"github.com/standin/standin/internal/sandbox/agent"
	"github.com/standin/standin/internal/sandbox/namespaces"
)

// The sandboxes these tests start run this test binary: as their agent
// (gvisor) or their init (namespaces).
func TestMain(m *testing.M) {
	agent.Main()
	namespaces.Init()
	os.Exit(m.Run())
}
