package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// echoHost answers every request with what it received: a stand-in for any
// upstream in the harness's own test.
const smokeHost = "smoke.e2e.test"

func init() {
	register(smokeHost, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "authorization=%s\n", r.Header.Get("Authorization"))
	}))
}

// TestSmoke checks the harness itself: a custom secret, a sandbox, curl
// inside it, the real value upstream and only the stand-in inside.
func TestSmoke(t *testing.T) {
	real := realValue("smk_", 32)
	sec := newSecret(t, real, "", "--host", smokeHost+"=bearer")
	sb := newSandbox(t, "--secret", "SMOKE_KEY="+sec, "--allow-out", smokeHost, "--deny-out", "0.0.0.0/0")
	stand := standIn(t, sb, "SMOKE_KEY")
	if stand == "" || stand == real {
		t.Fatalf("SMOKE_KEY inside = %d bytes, want a stand-in", len(stand))
	}
	mark := srv.up.mark()
	r := sh(t, sb, `curl -sS --fail-with-body https://`+smokeHost+`/v1/ping -H "Authorization: Bearer $SMOKE_KEY"`)
	if r.Code != 0 {
		t.Fatalf("curl in sandbox: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	assertNoRealValue(t, "curl's output", r.Stdout+r.Stderr)
	if !strings.Contains(r.Stdout, "authorization=Bearer "+stand) {
		t.Errorf("curl got %q, want the echo to show the stand-in (the gateway scrubs the reflected value)", r.Stdout)
	}
	got := srv.up.since(mark, smokeHost)
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer "+real {
		t.Fatalf("upstream got %d requests (%v), want one carrying the real value", len(got), got)
	}
}
