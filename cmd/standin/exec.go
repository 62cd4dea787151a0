package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/standin/standin/client"
)

const execHelp = `
Usage: standin exec [--env KEY=VALUE]... [--dir DIR] NAME [--] CMD [ARGS...]

Runs CMD in the running sandbox NAME and exits with its exit status. The
command sees the sandbox's current stand-ins (a secret attached or detached
since the sandbox started is seen by the next command), never a real value.
Its output is streamed as it arrives. Standard input, when it is not a
terminal, is read to the end (at most 1 MiB) and given to the command.
Flags go before NAME; everything after NAME is the command.

Examples:
  standin exec agent-1 -- printenv ANTHROPIC_API_KEY
  standin exec agent-1 -- curl -sS https://api.github.com/user -H "Authorization: Bearer $GITHUB_TOKEN"
  echo 'print(1+1)' | standin exec agent-1 -- python3 -
  standin exec --env DEBUG=1 --dir /tmp agent-1 -- sh -c 'env | sort'
`

// maxStdin is what exec reads of its standard input (the API's limit).
const maxStdin = 1 << 20

// exitError makes Main exit with a command's status, printing nothing.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func cmdExec(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("exec", execHelp, stdio)
	var env multiFlag
	fs.Var(&env, "env", "KEY=VALUE added to the command's environment (repeatable)")
	dir := fs.String("dir", "", "working directory in the sandbox (default its $HOME)")
	rest, err := parseCommand(fs, args)
	if err != nil {
		return err
	}
	if len(rest) < 2 {
		return &usageError{msg: "exec: want NAME and a command", hint: "run `standin exec --help`"}
	}
	req := client.ExecRequest{Args: rest[1:], Env: env, Dir: *dir}
	if f, ok := stdio.In.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		in, err := io.ReadAll(io.LimitReader(stdio.In, maxStdin+1))
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(in) > maxStdin {
			return &hintError{fmt.Errorf("stdin is larger than %d bytes", maxStdin), "pass large inputs as files the sandbox can read"}
		}
		req.Stdin = in
	}
	c, err := connect()
	if err != nil {
		return err
	}
	return exitStatus(c.Exec(ctx, rest[0], req, stdio.Out, stdio.Err))
}

// parseCommand parses the flags before NAME of a command that runs a
// command in a sandbox, and returns NAME and what follows it, without a
// "--" right after NAME.
func parseCommand(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if len(rest) > 1 && rest[1] == "--" {
		rest = append(rest[:1:1], rest[2:]...)
	}
	return rest, nil
}

// exitStatus is the error that makes Main exit as a command in a sandbox
// did: err from the API call that ran it, else its exit status.
func exitStatus(code int, err error) error {
	if err != nil {
		return apiErr(err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
