package gateway

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestPipelinedAfterUnreadBody: an upstream answers a POST without reading
// its body (an early error, a redirect), and the sandbox has already sent
// the next request on the same connection. The gateway answers both: the
// body the upstream left must not race the server's read of the next
// request (golang/go#68560 with full duplex), nor swallow it.
func TestPipelinedAfterUnreadBody(t *testing.T) {
	const real = "sk-pipeline-REALVALUE-0123456789abcdef"
	rig := newRig(t)
	tok := rig.ownSandbox("sb", real)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("upstream h2=%v", h2), func(t *testing.T) {
			port := rig.ownUpstream(h2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/early" {
					http.Error(w, "no", http.StatusUnauthorized) // body never read
					return
				}
				w.Write([]byte("ok " + r.URL.Path))
			}))
			for i := 0; i < 30; i++ {
				tc := tls.Client(rig.tunnel(t, "sb", ownHost+":"+port), &tls.Config{
					ServerName: ownHost, RootCAs: rig.caPool, NextProtos: []string{"http/1.1"},
				})
				host := ownHost + ":" + port
				body := strings.Repeat("x", 64<<10)
				raw := "POST /early HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok +
					fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body)) + body +
					"GET /next HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok + "\r\nConnection: close\r\n\r\n"
				got := exchange(t, tc, raw)
				rs := parseResponses(t, got)
				var st []int
				for _, r := range rs {
					st = append(st, r.status)
				}
				if len(rs) != 2 || rs[0].status != http.StatusUnauthorized || rs[1].status != http.StatusOK || string(rs[1].body) != "ok /next" {
					t.Fatalf("try %d: statuses %v, want [401 200] with the second answered", i, st)
				}
			}
		})
	}
}
