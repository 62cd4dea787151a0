package sandbox_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Nothing under internal/sandbox may import the vault (a sandbox never holds
// a real credential), nor runsc's own packages (runsc is a separate binary,
// built from tools/runsc, and its dependencies stay out of the main module).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "-test", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages, too few to prove anything: %q", len(deps), deps)
	}
	for _, d := range deps {
		for _, bad := range []string{"github.com/standin/standin/internal/vault", "gvisor.dev/gvisor/runsc"} {
			if d == bad || strings.HasPrefix(d, bad+"/") {
				t.Errorf("internal/sandbox/... depends on %s", d)
			}
		}
	}
}
