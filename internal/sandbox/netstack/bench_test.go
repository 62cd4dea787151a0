package netstack

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// BenchmarkTCP moves bulk data between a socket inside the namespace (the
// kernel's TCP, as a sandboxed process would use) and the TCP callback (the
// gateway's side), through tun0 and the userspace stack. Each iteration is
// one MiB; run with -benchtime=1024x for a 1 GiB transfer.
//
//	go test -run '^$' -bench TCP -benchtime=1024x ./internal/sandbox/netstack/
func BenchmarkTCP(b *testing.B) {
	const chunk = 1 << 20
	buf := bytes.Repeat([]byte("standin!"), chunk/8)

	// send writes n chunks to c and half-closes it.
	send := func(c net.Conn, n int) error {
		for range n {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return c.(interface{ CloseWrite() error }).CloseWrite()
	}

	for _, dir := range []string{"upload", "download"} {
		b.Run(dir, func(b *testing.B) {
			e := newEnv(b)
			c, err := e.dial("tcp", testDst.String())
			if err != nil {
				b.Fatalf("dial: %v", err)
			}
			defer c.Close()
			a := e.accept(b)
			// upload: sandbox -> callback; download: callback -> sandbox.
			from, to := c, a.conn
			if dir == "download" {
				from, to = a.conn, c
			}
			b.SetBytes(chunk)
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() { errc <- send(from, b.N) }()
			n, err := io.Copy(io.Discard, to)
			b.StopTimer()
			if err != nil {
				b.Fatalf("read: %v", err)
			}
			if err := <-errc; err != nil {
				b.Fatalf("write: %v", err)
			}
			if want := int64(b.N) * chunk; n != want {
				b.Fatalf("received %d bytes, want %d", n, want)
			}
		})
	}
}
