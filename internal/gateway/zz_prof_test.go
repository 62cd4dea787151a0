package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"io"
	"net/http"
	"testing"

	"github.com/standin/standin/client"
)

func BenchmarkZZProf(b *testing.B) {
	rig := newRig(b, "api.corp.test")
	rig.secret(client.SecretCreate{Name: "corp", Value: "corp-REALVALUE-0123456789abcdef", Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "x-api-key", Template: "{value}"}}}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"K": "corp"}})
	c := rig.httpClient("sb", false)
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", "https://api.corp.test/small", nil)
		req.Header.Set("x-api-key", env["K"])
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkZZDirect(b *testing.B) {
	rig := newRig(b, "api.corp.test")
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rig.up.roots},
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", rig.up.addr.String())
		}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	c := &http.Client{Transport: tr}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", "https://api.corp.test/small", nil)
		req.Header.Set("x-api-key", "x")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkZZProfPar(b *testing.B) {
	rig := newRig(b, "api.corp.test")
	rig.secret(client.SecretCreate{Name: "corp", Value: "corp-REALVALUE-0123456789abcdef", Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotHeader, Header: "x-api-key", Template: "{value}"}}}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"K": "corp"}})
	c := rig.httpClient("sb", false)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	rig.up.handle(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", "https://api.corp.test/small", nil)
			req.Header.Set("x-api-key", env["K"])
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
