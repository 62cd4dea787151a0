package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/standin/standin/client"
)

const shellHelp = `
Usage: standin shell NAME [--] [CMD [ARGS...]]

Opens an interactive shell (bash if the sandbox has it, else sh), or runs
CMD, in the running sandbox NAME. When standard input is a terminal the
command gets a pseudo-terminal of the terminal's size, which follows the
window when it is resized, and the terminal is put in raw mode until it
exits; otherwise standard input is passed through as it is read. standin
exits with the command's status.

Examples:
  standin shell agent-1
  standin shell agent-1 -- python3
  printf 'echo $GITHUB_TOKEN\nexit\n' | standin shell agent-1
`

// defaultShell prefers bash, which most images have, and falls back to sh.
var defaultShell = []string{"sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"}

func cmdShell(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("shell", shellHelp, stdio)
	rest, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(rest) < 1 {
		return &usageError{msg: "shell: want NAME", hint: "run `standin shell --help`"}
	}
	req := client.ExecRequest{Args: defaultShell}
	if len(rest) > 1 {
		req.Args = rest[1:]
	}
	c, err := connect()
	if err != nil {
		return err
	}
	in, inOK := stdio.In.(*os.File)
	out, outOK := stdio.Out.(*os.File)
	if inOK && outOK && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd())) {
		req.TTY = true
		if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 && w < 1<<16 && h < 1<<16 {
			req.Rows, req.Cols = uint16(h), uint16(w)
		}
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return err
		}
		defer term.Restore(int(in.Fd()), old)
	}
	var opts []client.ExecOption
	if req.TTY {
		// Follow the terminal's size: SIGWINCH says it changed.
		resize := make(chan client.WindowSize, 1)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer func() { signal.Stop(winch); close(winch) }()
		fd := int(out.Fd())
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 && w < 1<<16 && h < 1<<16 {
					select {
					case <-resize: // replace a size not yet sent
					default:
					}
					resize <- client.WindowSize{Rows: uint16(h), Cols: uint16(w)}
				}
			}
		}()
		opts = append(opts, client.WithResize(resize))
	}
	return exitStatus(c.ExecInteractive(ctx, rest[0], req, stdio.In, stdio.Out, stdio.Err, opts...))
}
