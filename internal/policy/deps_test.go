package policy

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoOwnImports checks DESIGN.md's rule that policy imports nothing of
// ours, transitively: it is the piece every other package trusts, so it must
// not be able to reach the vault or the store.
func TestNoOwnImports(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goBin = p
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/standin/standin/internal/policy"
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != self {
		t.Fatalf("go list -deps printed %q, want it to end with %s", deps, self)
	}
	for _, dep := range deps {
		if dep != self && (dep == "github.com/standin/standin" || strings.HasPrefix(dep, "github.com/standin/standin/")) {
			t.Errorf("policy depends on %s; it must import nothing of ours", dep)
		}
	}
}
