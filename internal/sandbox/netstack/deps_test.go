package netstack

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyNetstackImportsGVisor keeps gVisor, a large module, in this one
// package: no other Go file of the module may import it directly (tools/runsc,
// a module of its own, builds runsc from it).
func TestOnlyNetstackImportsGVisor(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" || name == "node_modules" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			// Another module (tools/runsc builds runsc from gVisor).
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			// A file another change left unparsable is not this test's
			// business; the build will say so.
			return nil
		}
		checked++
		if filepath.Dir(path) == self {
			return nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "gvisor.dev/gvisor" || strings.HasPrefix(p, "gvisor.dev/") {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %q; only internal/sandbox/netstack may import gVisor", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Errorf("checked %d Go files under %s, want the whole module", checked, root)
	}
}
