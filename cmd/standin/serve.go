package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/standin/standin/internal/server"
)

const serveHelp = `
Usage: standin serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--proxy-listen ADDR]
                     [--runtime gvisor|namespaces|none] [--pool N]

Runs the standin server: the API on loopback TCP and on <data dir>/api.sock,
and the egress gateway's explicit proxy (default 127.0.0.1:8721).
With the gvisor runtime (the default) it runs the sandboxes: it needs root
and runsc (bin/runsc beside bin/standin, built by "make runsc", or in PATH).
Sandboxes running when the server stops are stopped; their records stay,
with state "stopped". --pool N keeps N sandboxes started and idle, so that
"sandbox create" takes one at once instead of booting one (about 55 MiB
each while they wait). --runtime namespaces runs sandboxes with plain Linux namespaces and a
seccomp filter instead: far faster to start and run, but on the host's
kernel, so weaker; it says so when it starts. With --runtime none sandboxes are records only, for
sandboxes you run yourself with "standin sandbox env".
On first start it creates the data directory (0700) with master.key (0600;
back it up) and admin.token (0600; the CLI reads it).

The config file is JSON; every field is optional:
  {"version": 1, "dataDir": "/var/lib/standin", "listen": "127.0.0.1:8720",
   "log": {"format": "text", "level": "info"},
   "gateway": {"listen": "127.0.0.1:8721",
               "hosts": {"api.openai.com": "10.1.2.3:443"},
               "dialGuard": ["203.0.113.0/24"],
               "upstreamCAFile": "/etc/ssl/internal-ca.pem",
               "resolver": "10.0.0.53:53"},
   "runtime": "gvisor", "runscPath": "/usr/local/bin/runsc", "pool": 0,
   "maxFlows": 1024}
Flags override the file.

Examples:
  standin serve
  standin serve --data-dir /tmp/standin --listen 127.0.0.1:9000
  standin serve --runtime none
  standin serve --pool 4
  STANDIN_MASTER_KEY="$(cat /run/secrets/standin-key)" standin serve --config /etc/standin.json
`

func cmdServe(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("serve", serveHelp, stdio)
	configPath := fs.String("config", "", "config file (JSON)")
	dataDir := fs.String("data-dir", "", "data directory (overrides config and STANDIN_DATA_DIR)")
	listen := fs.String("listen", "", `API address on loopback, or "off" (default 127.0.0.1:8720)`)
	proxyListen := fs.String("proxy-listen", "", `gateway's explicit proxy address on loopback, or "off" (default 127.0.0.1:8721)`)
	runtime := fs.String("runtime", "", `sandbox runtime: "gvisor", "namespaces" or "none" (default gvisor)`)
	pool := fs.Int("pool", 0, "sandboxes kept started for fast creates")
	if _, err := parse(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	cfg := server.DefaultConfig()
	if *configPath != "" {
		f, err := os.Open(*configPath)
		if err != nil {
			return fmt.Errorf("open config: %w", err)
		}
		cfg, err = server.ParseConfig(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *configPath, err)
		}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *proxyListen != "" {
		cfg.Gateway.Listen = *proxyListen
	}
	if *runtime != "" {
		cfg.Runtime = *runtime
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "pool" {
			cfg.Pool = *pool
		}
	})
	if err := cfg.Validate(); err != nil {
		return &hintError{err, "fix the config file or flag"}
	}
	logger := newLogger(stdio, cfg.Log)
	s := &server.Server{Config: cfg, Logger: logger}
	return s.Run(ctx)
}

func newLogger(stdio *IO, c server.LogConfig) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(stdio.Err, opts))
	}
	return slog.New(slog.NewTextHandler(stdio.Err, opts))
}
