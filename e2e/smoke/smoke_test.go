// Package smoke checks the e2e harness itself with one secret, one sandbox
// and curl.
package smoke

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

const smokeHost = "smoke.e2e.test"

func init() {
	harness.Register(smokeHost, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "authorization=%s\n", r.Header.Get("Authorization"))
	}))
}

func TestMain(m *testing.M) { harness.Main(m) }

// TestSmoke: a custom secret, a sandbox, curl inside it; the real value
// arrives upstream, only the stand-in is inside, and the echo of the real
// value comes back as the stand-in.
func TestSmoke(t *testing.T) {
	real := harness.RealValue("smk_", 32)
	sec := harness.NewSecret(t, real, "--host", smokeHost+"=bearer")
	sb := harness.NewSandbox(t, "--secret", "SMOKE_KEY="+sec, "--allow-out", smokeHost, "--deny-out", "0.0.0.0/0")
	stand := harness.StandIn(t, sb, "SMOKE_KEY")
	if stand == "" || stand == real {
		t.Fatalf("SMOKE_KEY inside = %d bytes, want a stand-in", len(stand))
	}
	mark := harness.Srv.Up.Mark()
	r := harness.Sh(t, sb, `curl -sS --fail-with-body https://`+smokeHost+`/v1/ping -H "Authorization: Bearer $SMOKE_KEY"`)
	if r.Code != 0 {
		t.Fatalf("curl in sandbox: exit %d\n%s", r.Code, r.Output())
	}
	harness.AssertNoRealValue(t, "curl's output", r.Output())
	if !strings.Contains(r.Stdout, "authorization=Bearer "+stand) {
		t.Errorf("curl got %q, want the echo to show the stand-in (the gateway scrubs the reflected value)", r.Stdout)
	}
	got := harness.Srv.Up.Since(mark, smokeHost)
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer "+real {
		t.Fatalf("upstream got %d requests (%v), want one carrying the real value", len(got), got)
	}
}

// TestSmallAgent: laid out as `make build` does, every sandbox runs the
// agent-only binary next to standin (it starts faster under gVisor than
// standin itself as agent).
func TestSmallAgent(t *testing.T) {
	want, err := os.Stat(filepath.Join(filepath.Dir(harness.Srv.Bin), "standin-agent"))
	if err != nil {
		t.Fatal(err)
	}
	sb := harness.NewSandbox(t)
	r := harness.Exec(t, sb, "stat", "-c", "%s", "/run/standin-agent")
	if r.Code != 0 {
		t.Fatalf("stat /run/standin-agent in the sandbox: exit %d\n%s", r.Code, r.Output())
	}
	if got := strings.TrimSpace(r.Stdout); got != fmt.Sprint(want.Size()) {
		t.Errorf("size of /run/standin-agent, the sandbox's first process, = %s bytes, want %d (standin-agent)", got, want.Size())
	}
}
