package attacks

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/standin/standin/e2e/harness"
)

// confuseTheParser: request smuggling and pipelining on a connection
// the gateway intercepts, as raw bytes over TLS (python3 ssl). Whatever
// the gateway's HTTP server makes of the bytes, each request it sees is
// checked on its own: a request hidden behind another never reaches
// another host and never gets the real value. With both Content-Length
// and Transfer-Encoding, Go's server uses the chunked framing (RFC 9112
// section 6.3), so the bytes after the chunked body are the next request,
// refused like any other (421).
func confuseTheParser(t *testing.T, ag *agent) {
	si := ag.apiStandIn

	first := "POST /first HTTP/1.1\r\nHost: " + apiHost + "\r\nAuthorization: Bearer " + si + "\r\n"
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + deniedHost + "\r\nAuthorization: Bearer " + si + "\r\n\r\n"
	// last ends every stream so that the server closes the connection.
	last := "GET /last HTTP/1.1\r\nHost: " + apiHost + "\r\nConnection: close\r\n\r\n"
	cl := func(s string) string { return "Content-Length: " + strconv.Itoa(len(s)) + "\r\n" }
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	pad := strings.Repeat("x", 40)

	tests := []struct {
		name  string
		raw   string
		want  []int    // statuses the sandbox gets
		paths []string // paths the upstream gets
	}{
		{name: "pipelined, second for another host",
			raw:  first + "Content-Length: 0\r\n\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}},
		{name: "CL.TE smuggling",
			raw:  first + cl("0\r\n\r\n"+smuggled) + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}},
		{name: "TE.CL smuggling",
			raw:  first + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunk(pad) + "0\r\n\r\n" + smuggled + last,
			want: []int{200, 421, 200}, paths: []string{"/first", "/last"}},
		{name: "obfuscated Transfer-Encoding",
			raw:  first + cl(smuggled) + "Transfer-Encoding: xchunked\r\n\r\n" + smuggled + last,
			want: []int{501}},
		{name: "two Content-Lengths",
			raw:  first + "Content-Length: 0\r\n" + cl(smuggled) + "\r\n" + smuggled + last,
			want: []int{400}},
	}
	for _, tt := range tests {
		run(t, "parser/"+tt.name, func(t *testing.T, a *attack) {
			mark := harness.Srv.Up.Mark()
			raw := rawTLS(t, a, ag.name, apiHost, "443", apiHost, false, tt.raw)[0]
			rs := parseResponses(t, raw)
			a.want(slices.Equal(statuses(rs), tt.want), "statuses %v, want %v\n%s", statuses(rs), tt.want, raw)
			for i, r := range rs {
				if r.status == 421 {
					a.want(misdirected.matches(r), "response %d: %s, want %v", i+1, r.body, misdirected)
				}
			}
			got := harness.Srv.Up.Since(mark, "")
			a.upstream(got, apiHost)
			var paths []string
			for _, r := range got {
				paths = append(paths, r.Path)
				a.want(r.Host == apiHost, "upstream got %v: only %s may be reached", r, apiHost)
				if r.Path == "/first" {
					a.want(r.Header.Get("Authorization") == "Bearer "+ag.apiReal, "/first: the real value is not in its slot")
				}
			}
			a.want(slices.Equal(paths, tt.paths), "upstream paths %v, want %v", paths, tt.paths)
		})
	}
}
