package sandboxtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/sandbox"
)

const listIfaces = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"

// The sandbox's network is the namespace at Spec.NetNS, or one with only lo.
func (s *suite) testNetwork(t *testing.T) {
	r := s.cfg.New(t)

	// The sandbox's namespace has a veth to a peer namespace made here,
	// where a server listens; nothing else is reachable from it.
	name, path := testNetNS(t, "sbx")
	peerName, peerPath := testNetNS(t, "peer")
	ip(t, "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", peerName)
	ip(t, "-n", name, "addr", "add", "10.213.0.1/30", "dev", "veth0")
	ip(t, "-n", name, "link", "set", "veth0", "up")
	ip(t, "-n", peerName, "addr", "add", "10.213.0.2/30", "dev", "veth1")
	ip(t, "-n", peerName, "link", "set", "veth1", "up")
	var ln net.Listener
	inNetNS(t, peerPath, func() (err error) {
		ln, err = net.Listen("tcp", "10.213.0.2:0")
		return err
	})
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the peer"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	fetch := fmt.Sprintf(`import socket
try:
    print(socket.create_connection(("10.213.0.2", %d), timeout=5).recv(100).decode())
except OSError as e:
    print(type(e).__name__)`, port)

	t.Run("netns", func(t *testing.T) {
		in := Start(t, r, sandbox.Spec{NetNS: path})
		if got := Python(t, in, listIfaces); got.Stdout != "['lo', 'veth0']\n" {
			t.Errorf("interfaces with NetNS = %+v, want lo and veth0", got)
		}
		if got := Python(t, in, fetch); got.Stdout != "hello from the peer\n" {
			t.Errorf("connect to the peer with NetNS = %+v", got)
		}
	})

	t.Run("no netns", func(t *testing.T) {
		alone := Start(t, r, sandbox.Spec{})
		if got := Python(t, alone, listIfaces); got.Stdout != "['lo']\n" {
			t.Errorf("interfaces without NetNS = %+v, want only lo", got)
		}
		if got := Python(t, alone, fetch); got.Stdout != "OSError\n" {
			t.Errorf("connect to the peer without NetNS = %+v, want OSError (unreachable)", got)
		}
		// lo is up in the new namespace.
		const loopback = `import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname(), timeout=5); a, _ = s.accept(); a.send(b"lo up"); print(c.recv(10).decode())`
		if got := Python(t, alone, loopback); got.Stdout != "lo up\n" {
			t.Errorf("loopback without NetNS = %+v", got)
		}
	})

	// A namespace as package netns makes them: lo, and a TUN device whose
	// descriptor the daemon holds. A connection to any address leaves
	// through the TUN device: the gateway's address here, in a namespace
	// with nothing else in it.
	t.Run("tun", func(t *testing.T) {
		ns, tun := tunNetNS(t)
		in := Start(t, r, sandbox.Spec{NetNS: ns})
		if got := Python(t, in, listIfaces); got.Stdout != "['lo', 'tun0']\n" {
			t.Errorf("interfaces with NetNS = %+v, want lo and tun0", got)
		}
		done := make(chan error, 1)
		go func() {
			_, err := in.Exec(t.Context(), sandbox.ExecSpec{Args: []string{"/usr/bin/python3", "-c",
				"import socket; s = socket.socket(); s.settimeout(1); s.connect_ex(('100.96.0.1', 80))"}})
			done <- err
		}()
		defer func() {
			if err := <-done; err != nil {
				t.Errorf("connecting from inside: %v", err)
			}
		}()
		if err := tun.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		var seen []string
		for {
			n, err := tun.Read(buf)
			if err != nil {
				t.Fatalf("no TCP SYN to 100.96.0.1:80 on the TUN device (saw %q): %v", seen, err)
			}
			p := buf[:n]
			if n >= 24 && p[0]>>4 == 4 && p[9] == 6 && bytes.Equal(p[16:20], []byte{100, 96, 0, 1}) {
				ihl := int(p[0]&0xf) * 4
				if port := int(p[ihl+2])<<8 | int(p[ihl+3]); port == 80 {
					break
				}
			}
			seen = append(seen, fmt.Sprintf("%x", p[:min(n, 20)]))
		}
	})
}

func ip(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %q: %v: %s", args, err, out)
	}
}

// testNetNS makes a named network namespace with lo up, deleted when the
// test ends, and returns its name and path.
func testNetNS(tb testing.TB, what string) (string, string) {
	tb.Helper()
	name := fmt.Sprintf("stintest-%s-%d-%d", what, os.Getpid(), idSeq.Add(1))
	ip(tb, "netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	ip(tb, "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// tunNetNS makes a network namespace like package netns does (lo, and tun0
// with an address and a default route through the gateway 100.96.0.1) and
// returns its path and the TUN device's file, readable with deadlines.
func tunNetNS(tb testing.TB) (string, *os.File) {
	tb.Helper()
	name, path := testNetNS(tb, "tun")
	for _, args := range [][]string{
		{"tuntap", "add", "dev", "tun0", "mode", "tun"},
		{"addr", "add", "100.96.0.2/30", "dev", "tun0"},
		{"link", "set", "tun0", "up"},
		{"route", "add", "default", "via", "100.96.0.1", "dev", "tun0", "onlink"},
	} {
		ip(tb, append([]string{"-n", name}, args...)...)
	}
	fd := -1
	inNetNS(tb, path, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("tun0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("attach to tun0: %w", err)
		}
		return nil
	})
	f := os.NewFile(uintptr(fd), "tun0")
	tb.Cleanup(func() { f.Close() })
	return path, f
}

// inNetNS runs fn on a thread in the network namespace at path; sockets
// and devices opened there stay in it.
func inNetNS(tb testing.TB, path string, fn func() error) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("in %s: %v", path, err)
	}
}
