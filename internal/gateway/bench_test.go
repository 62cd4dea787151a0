package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/standin/standin/client"
)

// benchRig is a rig with one bearer secret on bench.test bound to sandbox
// "sb"; it returns the rig and the stand-in.
func benchRig(b *testing.B) (*rig, string) {
	b.Helper()
	rig := newRig(b, "bench.test")
	rig.secret(client.SecretCreate{Name: "bench", Value: "sk-bench-REALVALUE-0123456789abcdef", Hosts: []client.HostAuth{
		{Host: "bench.test", Auth: client.AuthSlot{Type: client.SlotBearer}},
	}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"TOKEN": "bench"}})
	// A small fixed answer, so the numbers are the proxy's, not the
	// upstream's JSON echo.
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	return rig, env["TOKEN"]
}

// benchGet sends b.N keep-alive GETs to url through c.
func benchGet(b *testing.B, c *http.Client, url, auth string) {
	b.Helper()
	req := newReq(b, http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkSwapRequest: keep-alive requests through the explicit proxy,
// intercepted, with the credential swapped and the response scrubbed.
// Compare with BenchmarkDirect (same upstream, no gateway). Allocations
// are counted in the whole process: client, gateway and upstream.
func BenchmarkSwapRequest(b *testing.B) {
	rig, tok := benchRig(b)
	benchGet(b, rig.httpClient("sb", false), "https://bench.test/v1/things", "Bearer "+tok)
}

// BenchmarkDirect: the same requests straight to the upstream.
func BenchmarkDirect(b *testing.B) {
	rig, _ := benchRig(b)
	benchGet(b, directClient(b, rig), "https://"+rig.up.addr.String()+"/v1/things", "Bearer sk-bench-REALVALUE-0123456789abcdef")
}

// directClient is an HTTP/1.1 client straight to the rig's upstream (as
// bench.test), for the benchmarks that compare with the gateway.
func directClient(b *testing.B, rig *rig) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rig.up.roots, ServerName: "bench.test"},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// BenchmarkColdConnect: each request on a new connection to the gateway:
// CONNECT, a TLS handshake with a (cached) leaf for bench.test, the swap.
// The gateway's upstream connection pool stays warm.
func BenchmarkColdConnect(b *testing.B) {
	rig, tok := benchRig(b)
	c := rig.httpClient("sb", false)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	benchGet(b, c, "https://bench.test/v1/things", "Bearer "+tok)
}

// bigRig serves 10 MB from /big on bench.test.
func bigRig(b *testing.B) (*rig, string) {
	rig, tok := benchRig(b)
	chunk := make([]byte, 64<<10)
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10485760")
		for range 160 {
			w.Write(chunk)
		}
	})
	return rig, tok
}

// BenchmarkDownload10MB: a 10 MB response through the gateway,
// intercepted and scrubbed. b.SetBytes makes the result MB/s.
func BenchmarkDownload10MB(b *testing.B) {
	rig, tok := bigRig(b)
	b.SetBytes(10 << 20)
	benchGet(b, rig.httpClient("sb", false), "https://bench.test/big", "Bearer "+tok)
}

// BenchmarkDownload10MBDirect: the same download without the gateway.
func BenchmarkDownload10MBDirect(b *testing.B) {
	rig, _ := bigRig(b)
	b.SetBytes(10 << 20)
	benchGet(b, directClient(b, rig), "https://"+rig.up.addr.String()+"/big", "Bearer sk-bench-REALVALUE-0123456789abcdef")
}

// BenchmarkNewHost: each request on a new connection to a host the
// gateway has not seen (inspect all, no secret for it): CONNECT, a leaf
// minted for the name, a TLS handshake each way and a new upstream
// connection. Compare with BenchmarkColdConnect, where the leaf and the
// upstream connection are reused.
func BenchmarkNewHost(b *testing.B) {
	rig := newRig(b, "bench.test", "*.mint.test")
	rig.sandbox(client.SandboxCreate{Name: "sb", Network: client.NetworkRules{
		AllowOut: []string{"127.0.0.0/8", "*.mint.test"}, Inspect: "all"}})
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) })
	c := rig.httpClient("sb", false)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	port := rig.up.addr.Port()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		host := fmt.Sprintf("h%d.mint.test", i)
		rig.resolver.set(host, "127.0.0.1")
		resp, err := c.Get(fmt.Sprintf("https://%s:%d/", host, port))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
