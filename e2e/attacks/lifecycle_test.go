package attacks

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/standin/standin/e2e/harness"
)

// TestLifecycle: the agent keeps using its stand-ins while the secrets are
// revoked or rotated. One sandbox, a secret per attack (bearer on apiHost),
// each bound under its own variable; the sandbox may reach apiHost only.
func TestLifecycle(t *testing.T) {
	vars := []string{"KEY_DETACH", "KEY_DELETE", "KEY_ROTATE", "KEY_WS"}
	secrets, reals := map[string]string{}, map[string]string{}
	args := []string{"--allow-out", apiHost, "--deny-out", "0.0.0.0/0", "--deny-out", "::/0"}
	for _, v := range vars {
		reals[v] = harness.RealValue("sk-attack-"+strings.ToLower(v)+"-", 40)
		secrets[v] = harness.NewSecret(t, reals[v], "--host", apiHost+"=bearer")
		args = append(args, "--secret", v+"="+secrets[v])
	}
	sb := harness.NewSandbox(t, args...)
	bin := attackerBin(t, sb)
	revokeDuringStream(t, sb, bin, secrets)
	revokeDuringWebSocket(t, sb)
	rotateAndDetach(t, sb, secrets["KEY_ROTATE"], reals["KEY_ROTATE"])
	rulesChangeDuringFlow(t, sb, args)
}

// rulesChangeDuringFlow: the agent opens a connection to a host while its
// rules allow it, and keeps using it after the operator denied the host.
// The flow is spliced (otherHost has no secret), so no request on it is
// judged on its own: the rules change itself must close it, before the
// CLI returns. rules are the sandbox's rules as created; the attack allows
// otherHost too, then goes back to them.
func rulesChangeDuringFlow(t *testing.T, sb string, rules []string) {
	var network []string
	for i := 0; i+1 < len(rules); i += 2 {
		if rules[i] == "--allow-out" || rules[i] == "--deny-out" {
			network = append(network, rules[i], rules[i+1])
		}
	}
	run(t, "timing/rules change during an open flow", func(t *testing.T, a *attack) {
		id := harness.Uniq(t, "hold")
		harness.MustCLI(t, "", append([]string{"sandbox", "network", sb, "--allow-out", otherHost}, network...)...)
		mark, logAt := harness.Srv.Up.Mark(), logMark()
		r := holdAcross(t, sb, id, []string{"hold.py", otherHost, id},
			func() bool { return len(harness.Srv.Up.Since(mark, otherHost)) > 0 },
			func() { harness.MustCLI(t, "", append([]string{"sandbox", "network", sb}, network...)...) })
		a.sandboxSaw(r)
		want := "before: 200\nafter: ERR "
		a.want(r.Code == 0 && strings.HasPrefix(r.Stdout, want), "holder: exit %d, printed %q; want %q and the exception", r.Code, r.Stdout, want)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, "")
		a.want(len(got) == 1 && got[0].Path == "/hold-before/"+id, "upstream got %v, want the first request only", got)
		a.want(logged(logAt, "flow closed", sb, reasonRulesChanged), "no %q log line with reason %q", "flow closed", reasonRulesChanged)
	})
}

// holdAcross runs a holder script from testdata (script and its
// arguments) in sandbox sb, waits until started reports that it is using
// its connection, runs change, then tells the holder to go on (it waits
// for /tmp/go-ID) and returns what it printed.
func holdAcross(t *testing.T, sb, id string, script []string, started func() bool, change func()) harness.Result {
	t.Helper()
	done := startExec(t, sb, append([]string{"python3", harness.Path(filepath.Join("attacks", "testdata", script[0]))}, script[1:]...)...)
	deadline := time.Now().Add(time.Minute)
	for !started() {
		select {
		case r := <-done:
			t.Fatalf("%s ended before it was under way: exit %d\n%s", script[0], r.Code, r.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got under way", script[0])
		}
	}
	change()
	if r := harness.Exec(t, sb, "touch", "/tmp/go-"+id); r.Code != 0 {
		t.Fatalf("touch: %s", r.Output())
	}
	return <-done
}

// logged reports whether the server logged, after mark, a line msg about
// sandbox with reason.
func logged(mark int, msg, sandbox, reason string) bool {
	for _, l := range logLines(mark, msg, sandbox) {
		if l["reason"] == reason {
			return true
		}
	}
	return false
}

// revokeDuringStream: the agent holds an event stream open and keeps using
// its stand-in after the secret is revoked. The stream is cut before the
// CLI returns (the upstream would hold it open for ever); every request
// after the revocation, with the same client (HTTP/2: on the same
// connection, which the cut stream leaves open) or a new one, is refused
// with secret_revoked and reaches nothing.
func revokeDuringStream(t *testing.T, sb, bin string, secrets map[string]string) {
	tests := []struct {
		name   string
		env    string
		h1     bool
		revoke func(t *testing.T)
	}{
		{name: "detach during an HTTP/2 stream", env: "KEY_DETACH", revoke: func(t *testing.T) {
			harness.MustCLI(t, "", "sandbox", "detach", sb, "KEY_DETACH")
		}},
		{name: "secret delete during an HTTP/1.1 stream", env: "KEY_DELETE", h1: true, revoke: func(t *testing.T) {
			harness.MustCLI(t, "", "secret", "delete", secrets["KEY_DELETE"])
		}},
	}
	for _, tt := range tests {
		run(t, "timing/"+tt.name, func(t *testing.T, a *attack) {
			id := harness.Uniq(t, "stream")
			st := newStream(t, id)
			mark, logAt := harness.Srv.Up.Mark(), logMark()
			// The upstream sends one event, then holds the stream until
			// the client or the gateway ends it: it is never released.
			argv := []string{bin, "stream", "-env", tt.env, "-url", "https://" + apiHost + "/sse/" + id,
				"-after", "https://" + apiHost + "/after/" + id}
			if tt.h1 {
				argv = append(argv, "-h1")
			}
			done := startExec(t, sb, argv...)
			select {
			case <-st.opened:
			case r := <-done:
				t.Fatalf("attacker ended before the stream opened: exit %d\n%s", r.Code, r.Output())
			}
			tt.revoke(t)
			r := <-done
			a.sandboxSaw(r)
			if r.Code != 0 {
				t.Fatalf("attacker: exit %d\n%s", r.Code, r.Output())
			}
			proto := "HTTP/2.0"
			if tt.h1 {
				proto = "HTTP/1.1"
			}
			lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
			refused := " status=403 proto=" + proto + " error=secret_revoked body=" + `{"error":{"code":"secret_revoked","message":"standin: ` + reasonRevoked + `"}}`
			want := []string{
				"stream: status=200 proto=" + proto,
				"event: data: one",
				"stream-cut: after 1 events",
				// HTTP/1.1: the cut ended the connection too.
				fmt.Sprintf("same-client: reused=%v", !tt.h1) + refused,
				"new-conn: reused=false" + refused,
			}
			a.want(strings.Join(lines, "\n") == strings.Join(want, "\n"), "attacker printed:\n%s\nwant:\n%s", r.Stdout, strings.Join(want, "\n"))
			a.want(logged(logAt, "request cut", sb, reasonCutRevoked), "no %q log line with reason %q", "request cut", reasonCutRevoked)
			got := harness.Srv.Up.Since(mark, "")
			a.upstream(got, apiHost)
			a.want(len(got) == 1 && strings.HasPrefix(got[0].Path, "/sse/"+id), "upstream got %v, want the stream only", got)
		})
	}
}

// revokeDuringWebSocket: the agent opened a WebSocket session with its
// stand-in (bound as KEY_WS) and goes on sending into it after the
// secret is detached. Each message is a new use of the session the real
// value opened: the detach must end it before the CLI returns, and the
// message sent after that must never reach the upstream.
func revokeDuringWebSocket(t *testing.T, sb string) {
	run(t, "timing/detach during a WebSocket session", func(t *testing.T, a *attack) {
		id := harness.Uniq(t, "ws")
		logAt := logMark()
		heard := heardOn(id)
		r := holdAcross(t, sb, id, []string{"wshold.py", apiHost, "/wsecho/" + id, "KEY_WS", id},
			func() bool { return len(heard.all()) > 0 },
			func() { harness.MustCLI(t, "", "sandbox", "detach", sb, "KEY_WS") })
		a.sandboxSaw(r)
		want := "handshake 101\necho: echo before\nafter: closed "
		a.want(r.Code == 0 && strings.HasPrefix(r.Stdout, want), "holder: exit %d, printed %q; want %q and the exception", r.Code, r.Stdout, want)
		a.want(slices.Equal(heard.all(), []string{"before"}), "the upstream heard %q, want only %q", heard.all(), "before")
		a.want(logged(logAt, "request cut", sb, reasonCutRevoked), "no %q log line with reason %q", "request cut", reasonCutRevoked)
	})
}

// rotateAndDetach: a rotation reaches the very next request of a running
// sandbox, with the same stand-in and no restart; after a detach the
// variable is gone and a stand-in the agent kept is refused. The secret
// is bound as KEY_ROTATE.
func rotateAndDetach(t *testing.T, sb, sec, real string) {
	standIn := harness.StandIn(t, sb, "KEY_ROTATE")
	send := func(t *testing.T, a *attack, path, token string) curlResult {
		return curl(t, a, sb, "https://"+apiHost+path+` -H "Authorization: Bearer `+token+`"`)
	}

	run(t, "timing/rotate then request", func(t *testing.T, a *attack) {
		// The saved stand-in lives in the sandbox's /tmp: it survives
		// only if the sandbox is not restarted.
		if r := harness.Sh(t, sb, `echo "$KEY_ROTATE" > /tmp/saved`); r.Code != 0 {
			t.Fatalf("save stand-in: %s", r.Output())
		}
		mark := harness.Srv.Up.Mark()
		if cr := send(t, a, "/before-rotate", "$KEY_ROTATE"); cr.code != 0 || cr.resp.status != 200 {
			t.Fatalf("before rotation: exit %d status %d", cr.code, cr.resp.status)
		}
		rotated := harness.RealValue("sk-attack-rotated-", 40)
		harness.MustCLI(t, rotated, "secret", "rotate", sec)
		cr := send(t, a, "/after-rotate", "$KEY_ROTATE")
		a.want(cr.code == 0 && cr.resp.status == 200, "after rotation: exit %d status %d %s", cr.code, cr.resp.status, cr.resp.body)
		r := harness.Sh(t, sb, `cat /tmp/saved; printenv KEY_ROTATE`)
		a.sandboxSaw(r)
		a.want(r.Stdout == standIn+"\n"+standIn+"\n", "after rotation the sandbox holds %q, want the same stand-in, saved before and current", r.Stdout)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		if len(got) != 2 {
			t.Fatalf("upstream got %v, want 2 requests", got)
		}
		a.want(got[0].Header.Get("Authorization") == "Bearer "+real, "before rotation: the old value is not in the slot")
		a.want(got[1].Header.Get("Authorization") == "Bearer "+rotated, "after rotation: the new value is not in the slot")
	})

	run(t, "timing/detach then request", func(t *testing.T, a *attack) {
		if r := harness.Sh(t, sb, `echo "$KEY_ROTATE" > /tmp/kept`); r.Code != 0 {
			t.Fatalf("keep stand-in: %s", r.Output())
		}
		mark := harness.Srv.Up.Mark()
		harness.MustCLI(t, "", "sandbox", "detach", sb, "KEY_ROTATE")
		r := harness.Exec(t, sb, "printenv", "KEY_ROTATE")
		a.sandboxSaw(r)
		a.want(r.Code == 1 && r.Stdout == "", "printenv KEY_ROTATE after detach: exit %d %q, want the variable gone", r.Code, r.Stdout)
		cr := send(t, a, "/after-detach", "$(cat /tmp/kept)")
		a.want(cr.code == 0 && revoked.matches(cr.resp), "kept stand-in after detach: exit %d status %d %s, want %v", cr.code, cr.resp.status, cr.resp.body, revoked)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		a.want(len(got) == 0, "upstream got %v, want nothing", got)
	})
}
