package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/standin/standin/internal/testutil"
)

// These tests create real namespaces and so need root. Each namespace gets a
// unique name and is removed by t.Cleanup; none has a route off the machine.

var nameSeq atomic.Int64

// testName returns a namespace name unique to this process and call.
func testName(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("stintest-%d-%d", os.Getpid(), nameSeq.Add(1))
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("this test creates network namespaces: run it as root")
	}
}

// create makes a namespace that is deleted when the test ends.
func create(tb testing.TB, cfg Config) *NS {
	tb.Helper()
	requireRoot(tb)
	n, err := Create(testName(tb), cfg)
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Delete(); err != nil {
			tb.Errorf("Delete: %v", err)
		}
	})
	return n
}

// ipJSON runs `ip -j -n name args...` and decodes its output into v.
func ipJSON(tb testing.TB, name string, v any, args ...string) {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"-j", "-n", name}, args...)...).Output()
	if err != nil {
		tb.Fatalf("ip %v: %v", args, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		tb.Fatalf("ip %v: decode %q: %v", args, out, err)
	}
}

type link struct {
	Name  string   `json:"ifname"`
	MTU   int      `json:"mtu"`
	Flags []string `json:"flags"`
	Addrs []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
		Len    int    `json:"prefixlen"`
	} `json:"addr_info"`
}

func TestCreate(t *testing.T) {
	n := create(t, Config{})

	var links []link
	ipJSON(t, n.Name, &links, "addr", "show")
	type summary struct {
		MTU   int
		Up    bool
		Addrs []string
	}
	got := map[string]summary{}
	for _, l := range links {
		s := summary{MTU: l.MTU, Up: slices.Contains(l.Flags, "UP")}
		for _, a := range l.Addrs {
			s.Addrs = append(s.Addrs, fmt.Sprintf("%s %s/%d", a.Family, a.Local, a.Len))
		}
		got[l.Name] = s
	}
	want := map[string]summary{
		// No inet6 anywhere: IPv6 is disabled in the namespace.
		"lo":   {MTU: 65536, Up: true, Addrs: []string{"inet 127.0.0.1/8"}},
		"tun0": {MTU: 65000, Up: true, Addrs: []string{"inet 100.96.0.2/30"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links in namespace (-want +got):\n%s", diff)
	}

	var routes []struct {
		Dst     string   `json:"dst"`
		Gateway string   `json:"gateway"`
		Dev     string   `json:"dev"`
		Flags   []string `json:"flags"`
	}
	ipJSON(t, n.Name, &routes, "route", "show", "default")
	if len(routes) != 1 || routes[0].Gateway != "100.96.0.1" || routes[0].Dev != "tun0" {
		t.Errorf("default routes = %+v, want one via 100.96.0.1 dev tun0", routes)
	}
	var routes6 []json.RawMessage
	ipJSON(t, n.Name, &routes6, "-6", "route", "show")
	if len(routes6) != 0 {
		t.Errorf("IPv6 routes = %s, want none", routes6)
	}

	names, err := List("stintest-")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Contains(names, n.Name) {
		t.Errorf("List(%q) = %q, want it to contain %q", "stintest-", names, n.Name)
	}
}

func TestCreateConfig(t *testing.T) {
	n := create(t, Config{
		SandboxAddr: netip.MustParsePrefix("10.0.0.2/24"),
		Gateway:     netip.MustParseAddr("192.168.7.1"),
		MTU:         1500,
	})
	var links []link
	ipJSON(t, n.Name, &links, "addr", "show", "dev", "tun0")
	if len(links) != 1 || links[0].MTU != 1500 || len(links[0].Addrs) != 1 ||
		links[0].Addrs[0].Local != "10.0.0.2" || links[0].Addrs[0].Len != 24 {
		t.Errorf("tun0 = %+v, want mtu 1500 and 10.0.0.2/24", links)
	}
	var routes []struct {
		Gateway string `json:"gateway"`
	}
	ipJSON(t, n.Name, &routes, "route", "show", "default")
	if len(routes) != 1 || routes[0].Gateway != "192.168.7.1" {
		t.Errorf("default routes = %+v, want one via 192.168.7.1 (onlink)", routes)
	}
}

func TestCreateExists(t *testing.T) {
	n := create(t, Config{})
	_, err := Create(n.Name, Config{})
	if !errors.Is(err, ErrExists) {
		t.Errorf("Create(%q) twice = %v, want ErrExists", n.Name, err)
	}
}

func TestDelete(t *testing.T) {
	requireRoot(t)
	n, err := Create(testName(t), Config{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Holding the namespace open lets us look inside after Delete: tun0
	// must be gone even while something still refers to the namespace.
	held, err := unix.Open(n.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace: %v", err)
	}
	defer unix.Close(held)

	if err := n.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := os.Lstat(n.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat(%q) after Delete = %v, want not exist", n.Path, err)
	}
	// Other test binaries make and delete namespaces in parallel, so
	// the directory as a whole is not compared: n.Path is this test's.

	var links []string
	err = Do(fmt.Sprintf("/proc/self/fd/%d", held), func() error {
		ifs, err := testutil.NetInterfaces()
		links = ifs
		return err
	})
	if err != nil {
		t.Fatalf("list links in deleted namespace: %v", err)
	}
	if diff := cmp.Diff([]string{"lo"}, links); diff != "" {
		t.Errorf("links left in deleted namespace (-want +got):\n%s", diff)
	}
}

func TestDoStaysInside(t *testing.T) {
	n := create(t, Config{})
	var inside []string
	if err := n.Do(func() error {
		var err error
		inside, err = testutil.NetInterfaces()
		return err
	}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	if diff := cmp.Diff([]string{"lo", "tun0"}, inside); diff != "" {
		t.Errorf("interfaces inside (-want +got):\n%s", diff)
	}
	wantErr := errors.New("from fn")
	if err := n.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do(fn returning error) = %v, want %v", err, wantErr)
	}
}

func TestRemoveLeftover(t *testing.T) {
	requireRoot(t)
	n, err := Create(testName(t), Config{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// A crashed daemon loses its NS value; only the name is left.
	n.TUN.Close()
	if err := Remove(n.Name); err != nil {
		t.Fatalf("Remove(%q): %v", n.Name, err)
	}
	names, err := List(n.Name)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(names) != 0 {
		t.Errorf("List(%q) after Remove = %q, want none", n.Name, names)
	}
	if err := Remove(n.Name); err != nil {
		t.Errorf("Remove(%q) twice = %v, want nil", n.Name, err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"sb-1", true},
		{"standin_ABC.9", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{".hidden", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a\nb", false},
		{"-n", false}, // ip would read it as a flag
		{"_x", false},
		{strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkName(tt.name)
			var ne *NameError
			if got := err == nil; got != tt.ok || (err != nil && !errors.As(err, &ne)) {
				t.Errorf("checkName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"v6 address", Config{SandboxAddr: netip.MustParsePrefix("fd00::2/64")}, false},
		{"v6 gateway", Config{Gateway: netip.MustParseAddr("fd00::1")}, false},
		{"gateway is sandbox", Config{Gateway: netip.MustParseAddr("100.96.0.2")}, false},
		{"mtu small", Config{MTU: 67}, false},
		{"mtu big", Config{MTU: 65536}, false},
		{"mtu max", Config{MTU: 65535}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := err == nil; got != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
			}
		})
	}
}
