package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/sandbox/netns"
	"github.com/standin/standin/internal/sandbox/netstack"
)

var nsSeq atomic.Int64

// TestTransparentFromNamespace: an unmodified curl in a network namespace
// whose only route is a TUN device served by the userspace stack, with no
// proxy settings, resolves the provider's name through the stack's DNS,
// connects, and its stand-in is swapped by the gateway entry point (b):
// the real value arrives upstream, only the stand-in is in the namespace.
// Packets go only into the namespace this test makes.
func TestTransparentFromNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces); CI runs as root")
	}
	rig := newRig(t, "api.corp.test")
	const real = "corp-REALVALUE-0123456789abcdef"
	rig.secret(client.SecretCreate{Name: "corp", Value: real, Hosts: []client.HostAuth{
		{Host: "api.corp.test", Auth: client.AuthSlot{Type: client.SlotBearer}}}})
	env := rig.sandbox(client.SandboxCreate{Name: "sb", Secrets: map[string]string{"CORP_KEY": "corp"}})
	sb, err := rig.store.GetSandbox(context.Background(), "sb")
	if err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("stintest-gw-%d-%d", os.Getpid(), nsSeq.Add(1))
	ns, err := netns.Create(name, netns.Config{})
	if err != nil {
		t.Fatalf("netns.Create: %v", err)
	}
	t.Cleanup(func() { ns.Delete() })
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc); os.Remove("/etc/netns") })
	os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+ns.Config.Gateway.String()+"\n"), 0o644)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, rig.gw.CA().CertPEM(), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := netstack.New(ns.TUN, ns.Config.MTU, netstack.Options{
		DNSAddr: ns.Config.Gateway,
		Allow:   func(string) bool { return true },
		TCP: func(c net.Conn, dst netip.AddrPort, host string) {
			rig.gw.HandleConn(ctx, c, ConnMeta{SandboxID: sb.ID, Dst: dst, Name: host})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	out, err := exec.Command("ip", "netns", "exec", name, "curl", "-sS", "--max-time", "20",
		"--cacert", caFile, "-H", "Authorization: Bearer "+env["CORP_KEY"],
		"https://api.corp.test/v1/things").CombinedOutput()
	if err != nil {
		t.Fatalf("curl in the namespace: %v: %s", err, out)
	}
	assertNoValue(t, real, "the namespace (curl output)", out)
	if !strings.Contains(string(out), env["CORP_KEY"]) {
		t.Errorf("echo did not come back with the stand-in in place of the value: %s", out)
	}
	reqs := rig.up.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+real {
		t.Fatalf("upstream got %d requests; want one with the real value in Authorization", len(reqs))
	}

	// A name the sandbox's DNS hands out for a host whose certificate the
	// gateway mints must match SNI: curl with a different SNI is refused.
	out, err = exec.Command("ip", "netns", "exec", name, "curl", "-sS", "--max-time", "20",
		"--cacert", caFile, "--connect-to", "other.corp.test:443:api.corp.test:443",
		"https://other.corp.test/").CombinedOutput()
	if err == nil {
		t.Errorf("SNI other.corp.test on a connection to api.corp.test's address was not refused: %s", out)
	}
	if n := len(rig.up.requests()); n != 1 {
		t.Errorf("upstream got %d requests after the SNI mismatch, want still 1", n)
	}
}
