package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

const cpHelp = `
Usage: standin cp LOCAL NAME:/PATH
       standin cp NAME:/PATH LOCAL

Copies a file into or out of the running sandbox NAME (at most 64 MiB).
The path in the sandbox is absolute; ending it with / copies into that
directory under the local file's name. LOCAL "-" is standard input or
output; a local directory receives the file under its name in the sandbox.
The file is written as the user commands run as, by the sandbox's own
tools: what a command there could not write, cp cannot either.

Examples:
  standin cp ./data.csv agent-1:/tmp/data.csv
  standin cp ./script.py agent-1:/tmp/
  standin cp agent-1:/tmp/report.json ./report.json
  tar cz src | standin cp - agent-1:/tmp/src.tgz
`

// remoteRE matches NAME:/PATH.
var remoteRE = regexp.MustCompile(`^([a-z0-9][a-z0-9._-]{0,62}):(/.*)$`)

func splitRemote(s string) (name, path string, ok bool) {
	m := remoteRE.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

func cmdCp(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("cp", cpHelp, stdio)
	pos, err := parse(fs, args, 2, 2, "a source and a destination")
	if err != nil {
		return err
	}
	srcName, srcPath, srcRemote := splitRemote(pos[0])
	dstName, dstPath, dstRemote := splitRemote(pos[1])
	switch {
	case srcRemote == dstRemote:
		return &usageError{msg: "cp: want one side as NAME:/PATH (a sandbox and an absolute path) and the other local",
			hint: "run `standin cp --help`"}
	case dstRemote:
		return cpIn(ctx, pos[0], dstName, dstPath, stdio)
	default:
		return cpOut(ctx, srcName, srcPath, pos[1], stdio)
	}
}

func cpIn(ctx context.Context, local, name, path string, stdio *IO) error {
	var r io.Reader = stdio.In
	size := int64(-1)
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return &hintError{fmt.Errorf("%s is a directory", local), "cp copies one file; archive a directory first: tar cz DIR | standin cp - NAME:/tmp/dir.tgz"}
		}
		r, size = f, fi.Size()
		if strings.HasSuffix(path, "/") {
			path += filepath.Base(local)
		}
	} else if strings.HasSuffix(path, "/") {
		return &usageError{msg: "cp: name the file in the sandbox when copying standard input", hint: "e.g. standin cp - NAME:/tmp/input.txt"}
	}
	c, err := connect()
	if err != nil {
		return err
	}
	if err := c.PutFile(ctx, name, path, r, size); err != nil {
		return fmt.Errorf("copy to %s:%s: %w", name, path, apiErr(err))
	}
	return nil
}

func cpOut(ctx context.Context, name, path, local string, stdio *IO) (err error) {
	if strings.HasSuffix(path, "/") {
		return &usageError{msg: fmt.Sprintf("cp: %s:%s names a directory; name a file", name, path), hint: "run `standin cp --help`"}
	}
	c, err := connect()
	if err != nil {
		return err
	}
	if local == "-" {
		if _, err := c.GetFile(ctx, name, path, stdio.Out); err != nil {
			return fmt.Errorf("copy from %s:%s: %w", name, path, apiErr(err))
		}
		return nil
	}
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		local = filepath.Join(local, filepath.Base(path))
	}
	// Write next to the target and rename, so a failed copy leaves the
	// old file (or none), never half of the new one.
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".standin-cp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := c.GetFile(ctx, name, path, tmp); err != nil {
		return fmt.Errorf("copy from %s:%s: %w", name, path, apiErr(err))
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return fmt.Errorf("copy from %s:%s: %w", name, path, err)
	}
	return nil
}
