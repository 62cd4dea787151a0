package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/standin/standin/internal/gateway"
	"github.com/standin/standin/internal/sandbox/netstack"
)

// DefaultPort is where the API listens on loopback unless configured.
const DefaultPort = 8720

// Config is the server's one config document (JSON). Every field's zero value
// means its documented default, so an empty document is a working config.
// Secrets are never in config: the master key comes from STANDIN_MASTER_KEY
// or the data directory.
type Config struct {
	// Version of this document's format. Default (and only) 1.
	Version int `json:"version"`
	// DataDir holds the database, master key, admin token and API socket.
	// Default: $STANDIN_DATA_DIR, else /var/lib/standin for root, else
	// $XDG_DATA_HOME/standin (~/.local/share/standin).
	DataDir string `json:"dataDir"`
	// Listen is the API's TCP address; it must be a loopback address.
	// Default "127.0.0.1:8720". "off" disables TCP (socket only).
	Listen string `json:"listen"`
	// Log sets the log format and level.
	Log LogConfig `json:"log"`
	// Gateway configures the egress gateway.
	Gateway GatewayConfig `json:"gateway"`
	// Runtime runs the sandboxes: "gvisor" (default; needs root and runsc),
	// "namespaces" (plain Linux namespaces and a seccomp filter: much
	// faster, but commands run on the host's kernel, so weaker isolation;
	// needs root) or "none" (sandboxes are records only, for sandboxes
	// standin does not run, which use the explicit proxy).
	Runtime string `json:"runtime"`
	// RunscPath is the runsc binary for runtime gvisor. Default: runsc next
	// to the standin binary (bin/runsc, built by `make runsc`), else $PATH.
	RunscPath string `json:"runscPath"`
	// Pool is how many sandboxes the server keeps started and idle, so that
	// a create takes one at once instead of booting one (about 55 MiB of
	// memory each while they wait). Default 0: every create boots its own.
	Pool int `json:"pool"`
	// MaxFlows is how many TCP connections one sandbox may have open
	// through the gateway at once; more are refused (ECONNREFUSED inside)
	// with a warning in the log. It bounds what one sandbox can make the
	// daemon, which serves them all, hold. Default 0: 1024
	// (netstack.DefaultMaxFlows).
	MaxFlows int `json:"maxFlows"`
}

// maxMaxFlows bounds Config.MaxFlows: past it the bound protects nothing.
const maxMaxFlows = 65536

// maxPool bounds Config.Pool: a typo such as 1000 would otherwise start a
// thousand sandboxes.
const maxPool = 64

// Runtimes, as in Config.Runtime.
const (
	RuntimeGVisor     = "gvisor"
	RuntimeNamespaces = "namespaces"
	RuntimeNone       = "none"
)

// GatewayConfig configures the egress gateway.
type GatewayConfig struct {
	// Listen is the explicit proxy's address (HTTP CONNECT and
	// absolute-form HTTP), on loopback. Default "127.0.0.1:8721"; "off"
	// disables it.
	Listen string `json:"listen"`
	// Hosts routes host names to fixed addresses, e.g.
	// {"api.openai.com": "10.1.2.3:443"} for an internal LLM gateway (or a
	// test's fake provider). Targets skip the special-address check but
	// not DialGuard. Only this file can set it, never the API. Default none.
	Hosts map[string]string `json:"hosts"`
	// DialGuard lists the only CIDRs the gateway may ever connect to,
	// whatever the rules say. Tests set ["127.0.0.0/8"]. Default: no guard
	// (every address the sandbox's rules allow).
	DialGuard []string `json:"dialGuard"`
	// UpstreamCAFile is a PEM bundle of extra roots for verifying upstream
	// servers (an internal CA). Default: the system roots only.
	UpstreamCAFile string `json:"upstreamCAFile"`
	// Resolver is the DNS server ("host:port", UDP and TCP) the gateway
	// asks for upstream addresses, e.g. an internal resolver, or a test's
	// own on loopback. Default: the system resolver (/etc/resolv.conf,
	// /etc/hosts). Its answers are checked like any other: special
	// addresses need an allow CIDR, and DialGuard still applies.
	Resolver string `json:"resolver"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `json:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `json:"level"`
}

// ConfigError names the field that is wrong.
type ConfigError struct {
	Field, Value, Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config field %s = %q: %s", e.Field, e.Value, e.Problem)
}

// DefaultConfig returns the defaults, with DataDir resolved from the
// environment.
func DefaultConfig() Config {
	return Config{
		Version: 1,
		DataDir: DefaultDataDir(),
		Listen:  fmt.Sprintf("127.0.0.1:%d", DefaultPort),
		Log:     LogConfig{Format: "text", Level: "info"},
		Gateway: GatewayConfig{Listen: fmt.Sprintf("127.0.0.1:%d", DefaultPort+1)},
		Runtime: RuntimeGVisor,
	}
}

// DefaultDataDir is where the server keeps its state unless told otherwise;
// the CLI uses the same rule to find the socket and token.
func DefaultDataDir() string {
	if d := os.Getenv("STANDIN_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/standin"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "standin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "standin-"+fmt.Sprint(os.Geteuid()))
	}
	return filepath.Join(home, ".local", "share", "standin")
}

// ParseConfig reads a JSON config over the defaults. Unknown fields are
// errors, so a typo never silently falls back to a default.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
			return c, fmt.Errorf("parse config: error at line %d: %w", line, err)
		}
		return c, fmt.Errorf("parse config: %w", err)
	}
	return c, nil
}

// Validate checks every field; the error names the first bad one.
func (c *Config) Validate() error {
	if c.Version != 1 {
		return &ConfigError{"version", fmt.Sprint(c.Version), "only version 1 is known"}
	}
	if c.DataDir == "" {
		return &ConfigError{"dataDir", "", "must name a directory"}
	}
	if !filepath.IsAbs(c.DataDir) {
		abs, err := filepath.Abs(c.DataDir)
		if err != nil {
			return &ConfigError{"dataDir", c.DataDir, err.Error()}
		}
		c.DataDir = abs
	}
	if err := checkLoopback("listen", c.Listen); err != nil {
		return err
	}
	if c.Gateway.Listen == "" {
		c.Gateway.Listen = fmt.Sprintf("127.0.0.1:%d", DefaultPort+1)
	}
	if err := checkLoopback("gateway.listen", c.Gateway.Listen); err != nil {
		return err
	}
	if _, err := gateway.ParseGuard(c.Gateway.DialGuard); err != nil {
		return &ConfigError{"gateway.dialGuard", strings.Join(c.Gateway.DialGuard, ","), err.Error()}
	}
	if _, err := gateway.ParseOverrides(c.Gateway.Hosts); err != nil {
		return &ConfigError{"gateway.hosts", "", err.Error()}
	}
	if c.Gateway.Resolver != "" {
		if _, err := netip.ParseAddrPort(c.Gateway.Resolver); err != nil {
			return &ConfigError{"gateway.resolver", c.Gateway.Resolver, "want an IP address and port such as 10.0.0.53:53"}
		}
	}
	switch c.Runtime {
	case "":
		c.Runtime = RuntimeGVisor
	case RuntimeGVisor, RuntimeNamespaces, RuntimeNone:
	default:
		return &ConfigError{"runtime", c.Runtime, "want \"gvisor\", \"namespaces\" or \"none\""}
	}
	if c.MaxFlows < 0 || c.MaxFlows > maxMaxFlows {
		return &ConfigError{"maxFlows", fmt.Sprint(c.MaxFlows), fmt.Sprintf("want 1 to %d connections per sandbox, or 0 for the default (%d)", maxMaxFlows, netstack.DefaultMaxFlows)}
	}
	if c.Pool < 0 || c.Pool > maxPool {
		return &ConfigError{"pool", fmt.Sprint(c.Pool), fmt.Sprintf("want 0 to %d sandboxes", maxPool)}
	}
	if c.Pool > 0 && c.Runtime == RuntimeNone {
		return &ConfigError{"pool", fmt.Sprint(c.Pool), `runtime "none" runs no sandboxes: set the pool to 0 or choose a runtime`}
	}
	if c.RunscPath != "" && !filepath.IsAbs(c.RunscPath) {
		return &ConfigError{"runscPath", c.RunscPath, "must be an absolute path"}
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return &ConfigError{"log.format", c.Log.Format, "want \"text\" or \"json\""}
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		return &ConfigError{"log.level", c.Log.Level, "want debug, info, warn or error"}
	}
	return nil
}

// checkLoopback accepts "off" or host:port on a loopback address.
func checkLoopback(field, addr string) error {
	if addr == "off" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &ConfigError{field, addr, "want host:port such as 127.0.0.1:8720, or \"off\""}
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return &ConfigError{field, addr, "must be a loopback address (127.0.0.1 or ::1): it is not authenticated for the network"}
	}
	return nil
}

// Paths inside the data directory.
const (
	DBFile     = "standin.db"
	TokenFile  = "admin.token"
	SocketFile = "api.sock"
	LockFile   = "lock"
)
