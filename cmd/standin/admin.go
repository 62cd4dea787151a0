package main

import (
	"context"
	"fmt"
	"os"

	"github.com/standin/standin/internal/server"
)

const adminHelp = `
Usage: standin admin rotate-master-key [--data-dir DIR]

Replaces the master key: every secret's data key is rewrapped under a new
master key in one transaction (values are never decrypted or written in
clear). The server must be stopped: the command takes the data directory's
lock.

With a key file (<data dir>/master.key) the new key is generated and
written there. With STANDIN_MASTER_KEY, give the new key in
STANDIN_NEW_MASTER_KEY and start the server with it afterwards.

Examples:
  standin admin rotate-master-key
  STANDIN_MASTER_KEY=$OLD STANDIN_NEW_MASTER_KEY=$(head -c32 /dev/urandom | base64) \
      standin admin rotate-master-key --data-dir /var/lib/standin
`

func cmdAdmin(ctx context.Context, args []string, stdio *IO) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(stdio.Out, adminHelp[1:])
		if len(args) == 0 {
			return &usageError{msg: "admin: want a subcommand", hint: "standin admin rotate-master-key"}
		}
		return nil
	}
	if args[0] != "rotate-master-key" {
		return &usageError{msg: "admin: unknown subcommand " + showWord(args[0]), hint: "standin admin rotate-master-key"}
	}
	fs := newFlags("admin rotate-master-key", adminHelp, stdio)
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "data directory")
	if _, err := parse(fs, args[1:], 0, 0, "no arguments"); err != nil {
		return err
	}
	d, err := server.OpenData(ctx, *dataDir, newLogger(stdio, server.LogConfig{}))
	if err != nil {
		return err
	}
	defer d.Close()
	oldID, newID, n, err := d.RotateMasterKey(ctx, os.Getenv("STANDIN_NEW_MASTER_KEY"))
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	fmt.Fprintf(stdio.Out, "rotated master key %s -> %s: %d data keys rewrapped\n", oldID, newID, n)
	if os.Getenv("STANDIN_MASTER_KEY") != "" {
		fmt.Fprintln(stdio.Out, "start the server with STANDIN_MASTER_KEY set to the new key")
	}
	return nil
}
