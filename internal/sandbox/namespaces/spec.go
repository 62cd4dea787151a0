package namespaces

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/standin/standin/internal/sandbox"
)

// config returns what the init needs to build the sandbox of s.
func config(s sandbox.Spec, scratch string) (*initConfig, error) {
	d := s.WithDefaults()
	cfg := &initConfig{Scratch: scratch, Hostname: d.Hostname, UID: d.UID, GID: d.GID, NewNet: s.NetNS == ""}
	for _, h := range s.Hide {
		hs, err := hide(h)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidSpec, err)
		}
		cfg.Hide = append(cfg.Hide, hs...)
	}
	for _, m := range s.Mounts {
		cfg.Mounts = append(cfg.Mounts, bind{Source: filepath.Clean(m.Source), Target: filepath.Clean(m.Target), Writable: m.Writable})
	}
	return cfg, nil
}

// hide returns what masks a host path: an empty directory over a directory
// (or over a path that does not exist yet), the empty file over a file.
// Both the path and, if it is a symlink, its target are masked.
func hide(path string) ([]hidden, error) {
	path = filepath.Clean(path)
	paths := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		paths = append(paths, real)
	}
	var hs []hidden
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir():
			hs = append(hs, hidden{Path: p})
		case err != nil:
			return nil, fmt.Errorf("hide %q: %w", p, err)
		default:
			hs = append(hs, hidden{Path: p, File: true})
		}
	}
	return hs, nil
}
