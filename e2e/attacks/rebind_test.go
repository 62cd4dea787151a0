package attacks

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// rebinding: names the sandbox's rules allow, which resolve (through
// the gateway's resolver) to loopback, private, metadata or IPv6 loopback
// addresses, or to a public address followed by a private one. The
// sandbox's own DNS hands out synthetic addresses only; the gateway
// resolves the name itself when it dials and refuses the address, over
// plain HTTP and with a credential over TLS.
//
// The trap is a listener on this machine's 127.0.0.1 at the port the
// sandbox asks for: a broken check would reach it. Every refusal must come
// from the special-address check, which the gateway applies before its
// dial guard (127.0.0.0/8 here): the guard only keeps a broken check from
// sending packets off the machine.
func rebinding(t *testing.T, ag *agent) {
	trap := newTrap(t)
	pool := netip.MustParsePrefix("198.18.0.0/15")

	for _, name := range rebindNames {
		run(t, "rebinding/"+name, func(t *testing.T, a *attack) {
			dns, up := len(harness.Srv.DNS.Queries()), harness.Srv.Up.Mark()
			want := upstreamRefused(reasonSpecial)

			r := harness.Exec(t, ag.name, "getent", "ahostsv4", name)
			a.sandboxSaw(r)
			fields := strings.Fields(r.Stdout)
			addr, err := netip.ParseAddr(strings.Join(fields[:min(1, len(fields))], ""))
			a.want(r.Code == 0 && err == nil && pool.Contains(addr), "getent %s: %q, want a synthetic address from %s", name, r.Stdout, pool)

			crs := curls(t, a, ag.name, "http://"+name+":"+trap.Port+"/plain",
				"https://"+name+":"+trap.Port+`/tls -H "Authorization: Bearer $REBIND_KEY"`)
			for i, what := range []string{"plain HTTP", "TLS with the credential"} {
				a.want(crs[i].code == 0 && want.matches(crs[i].resp), "%s: exit %d status %d %s, want %v", what, crs[i].code, crs[i].resp.status, crs[i].resp.body, want)
			}

			a.want(trap.Reached(t) == 0, "a connection reached 127.0.0.1:%s", trap.Port)
			got := harness.Srv.Up.Since(up, "")
			a.upstream(got, "")
			a.want(len(got) == 0, "upstream got %v", got)
			// The refusal is of the resolved address: the gateway did ask.
			a.want(slices.Contains(dnsSince(dns), name+"."), "the gateway's resolver was asked %v, want %s", dnsSince(dns), name)
		})
	}
}
