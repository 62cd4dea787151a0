package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/server"
	"golang.org/x/term"
)

// IO is where a command reads and writes; tests swap it.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

const usage = `standin keeps API keys out of sandboxes: a sandbox sees stand-in tokens,
the egress gateway swaps them for the real credential on the secret's hosts.

Usage:
  standin serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--runtime gvisor|none]
  standin secret create NAME --provider ID        (value on stdin or prompted)
  standin secret create NAME --host HOST[=AUTH]... [--auth AUTH]
  standin secret list | get NAME | rotate NAME | delete NAME
  standin secret sandboxes NAME
  standin secret activity NAME [--sandbox S] [--status 4xx] [--since 1h] [--follow]
  standin sandbox create NAME [--secret ENV=SECRET]... [--allow-out X]... [--deny-out X]... [--timeout 30m]
  standin sandbox list | get NAME | delete NAME
  standin sandbox attach NAME ENV=SECRET
  standin sandbox detach NAME ENV
  standin sandbox network NAME [--allow-out X]... [--deny-out X]... [--inspect all]
  standin sandbox env NAME
  standin exec NAME [--] CMD [ARGS...]
  standin shell NAME [--] [CMD [ARGS...]]
  standin cp LOCAL NAME:/PATH | NAME:/PATH LOCAL
  standin ca export
  standin providers
  standin admin rotate-master-key [--data-dir DIR]
  standin version

Every listing takes --json. Run "standin COMMAND --help" for details and examples.

Examples:
  standin serve
  printf %s "$ANTHROPIC_API_KEY" | standin secret create anthropic-prod --provider anthropic
  standin sandbox create agent-1 --secret ANTHROPIC_API_KEY=anthropic-prod \
      --allow-out api.anthropic.com --deny-out 0.0.0.0/0 --deny-out ::/0
  standin secret activity anthropic-prod --follow

Environment:
  STANDIN_DATA_DIR        data directory (default /var/lib/standin for root,
                          else ~/.local/share/standin); the CLI finds the
                          server's socket and admin token there
  STANDIN_URL             talk to the API at this URL instead of the socket
  STANDIN_TOKEN           API token to use with STANDIN_URL
  STANDIN_MASTER_KEY      (serve) master key, base64 of 32 bytes, instead of
                          <data dir>/master.key
  STANDIN_NEW_MASTER_KEY  (admin rotate-master-key) the new key when the
                          master key comes from the environment
`

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdio *IO) int {
	err := run(ctx, args, stdio)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stdio.Err, "standin: %s\n", ue.msg)
		if ue.hint != "" {
			fmt.Fprintf(stdio.Err, "hint: %s\n", ue.hint)
		}
		return 2
	}
	var he *hintError
	if errors.As(err, &he) {
		fmt.Fprintf(stdio.Err, "standin: %s\nhint: %s\n", he.err, he.hint)
		return 1
	}
	fmt.Fprintf(stdio.Err, "standin: %s\n", err)
	return 1
}

func run(ctx context.Context, args []string, stdio *IO) error {
	if len(args) == 0 {
		io.WriteString(stdio.Err, usage)
		return &usageError{msg: "no command given", hint: "run `standin --help` for the list of commands"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		io.WriteString(stdio.Out, usage)
		return nil
	case "version", "--version":
		fmt.Fprintf(stdio.Out, "standin %s\n", Version)
		return nil
	}
	if c, ok := commands[cmd]; ok {
		return c(ctx, rest, stdio)
	}
	return &usageError{msg: "unknown command " + showWord(cmd), hint: "run `standin --help` for the list of commands"}
}

// commandWordRE matches what a mistyped command looks like.
var commandWordRE = regexp.MustCompile(`^[a-z][a-z-]{0,23}$`)

// showWord quotes an unknown command word for an error, unless it does
// not look like one: then it may be a credential pasted in the wrong
// place, and only its length is shown.
func showWord(s string) string {
	if commandWordRE.MatchString(s) {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("(%d characters, not shown: it does not look like a command name)", len(s))
}

// commands are the top-level commands, by name and alias.
var commands = map[string]subcommand{
	"serve":  cmdServe,
	"secret": cmdSecret, "secrets": cmdSecret,
	"sandbox": cmdSandbox, "sandboxes": cmdSandbox,
	"exec":      cmdExec,
	"cp":        cmdCp,
	"shell":     cmdShell,
	"providers": cmdProviders,
	"ca":        cmdCA,
	"admin":     cmdAdmin,
}

// usageError is a mistake in the command line (exit 2).
type usageError struct{ msg, hint string }

func (e *usageError) Error() string { return e.msg }

// hintError is a failure with advice on what to do next.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + " (" + e.hint + ")" }
func (e *hintError) Unwrap() error { return e.err }

// newFlags makes a flag set whose --help prints help (usage text with
// examples) to stdout and whose errors become usage errors.
func newFlags(name, help string, stdio *IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdio.Out, strings.TrimLeft(help, "\n"))
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if b.Len() > 0 {
			fmt.Fprintf(stdio.Out, "\nFlags:\n%s", b.String())
		}
	}
	return fs
}

// parse parses flags and positional arguments in any order and checks the
// number of positional arguments.
func parse(fs *flag.FlagSet, args []string, minPos, maxPos int, what string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minPos || (maxPos >= 0 && len(pos) > maxPos) {
		msg := fmt.Sprintf("%s: want %s", fs.Name(), what)
		if len(pos) > 0 && maxPos >= 0 && len(pos) > maxPos {
			// Not echoed: the usual extra argument is a secret value
			// typed where stdin was meant.
			msg = fmt.Sprintf("%s: %d arguments, want %s", fs.Name(), len(pos), what)
		}
		return nil, &usageError{msg: msg, hint: fmt.Sprintf("run `standin %s --help`; secret values are read from stdin, never from arguments", fs.Name())}
	}
	return pos, nil
}

// parseFlags parses the flags at the start of args; an error is a usage
// error, or flag.ErrHelp once the help is printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp // the flag package has printed the help
		}
		return &usageError{msg: flagValueRE.ReplaceAllString(err.Error(), "value"), hint: fmt.Sprintf("run `standin %s --help`", fs.Name())}
	}
	return nil
}

// flagValueRE matches the quoted flag value in the flag package's errors
// ("invalid value \"x\" for flag -n"), which is dropped: a value given to
// the wrong flag may be a credential.
var flagValueRE = regexp.MustCompile(`value "(?:[^"\\]|\\.)*"`)

// parseConnect is parse, then connect: the start of a command that needs
// no other check before it calls the API.
func parseConnect(fs *flag.FlagSet, args []string, minPos, maxPos int, what string) ([]string, *client.Client, error) {
	pos, err := parse(fs, args, minPos, maxPos, what)
	if err != nil {
		return nil, nil, err
	}
	c, err := connect()
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// connect returns a client for the running server: STANDIN_URL and
// STANDIN_TOKEN if set, else the socket and token in the data directory.
func connect() (*client.Client, error) {
	if u := os.Getenv("STANDIN_URL"); u != "" {
		tok := os.Getenv("STANDIN_TOKEN")
		if tok == "" {
			return nil, &hintError{errors.New("STANDIN_URL is set but STANDIN_TOKEN is not"),
				"set STANDIN_TOKEN to the contents of <data dir>/admin.token"}
		}
		return client.New(u, tok), nil
	}
	dir := server.DefaultDataDir()
	tok, err := os.ReadFile(filepath.Join(dir, server.TokenFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &hintError{fmt.Errorf("no standin server has run with data directory %s", dir),
				"start one with `standin serve`, or set STANDIN_DATA_DIR (or STANDIN_URL and STANDIN_TOKEN)"}
		}
		return nil, &hintError{fmt.Errorf("read API token: %w", err), "run the CLI as the user that runs `standin serve`"}
	}
	sock := filepath.Join(dir, server.SocketFile)
	return client.New("http://standin", strings.TrimSpace(string(tok)), client.WithUnixSocket(sock)), nil
}

// apiErr adds a hint to errors from the API client.
func apiErr(err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s", ae.Message)
	}
	if strings.Contains(err.Error(), "connect: no such file or directory") || strings.Contains(err.Error(), "connection refused") {
		return &hintError{errors.New("cannot reach the standin server"), "is `standin serve` running? (or set STANDIN_URL)"}
	}
	return err
}

// readValue reads a secret value: hidden prompt on a terminal, else all of
// stdin with one trailing newline removed. Never from argv, where any user
// on the machine could read it in /proc.
func readValue(stdio *IO, prompt string) ([]byte, error) {
	if f, ok := stdio.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdio.Err, prompt)
		v, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdio.Err)
		if err != nil {
			return nil, fmt.Errorf("read value: %w", err)
		}
		return checkValue(v)
	}
	v, err := io.ReadAll(io.LimitReader(stdio.In, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	v = []byte(strings.TrimSuffix(strings.TrimSuffix(string(v), "\n"), "\r"))
	return checkValue(v)
}

func checkValue(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, &hintError{errors.New("empty secret value"),
			"pipe the value on stdin, e.g. printf %s \"$KEY\" | standin secret create NAME --provider P"}
	}
	return v, nil
}

// jsonFlag adds --json to a command that can print what it got as JSON.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON")
}

// output prints v, what an API call returned, as indented JSON with --json,
// else with text. An error from the call is returned through apiErr.
func output[T any](stdio *IO, asJSON bool, v T, err error, text func(io.Writer, T) error) error {
	if err != nil {
		return apiErr(err)
	}
	if asJSON {
		return printJSON(stdio.Out, v)
	}
	return text(stdio.Out, v)
}

// done prints the line that reports an API call that returns nothing, or
// the call's error through apiErr.
func done(stdio *IO, err error, format string, a ...any) error {
	if err != nil {
		return apiErr(err)
	}
	fmt.Fprintf(stdio.Out, format, a...)
	return nil
}

// table is a text printer for output: header, then one row per item,
// aligned in columns at the tabs.
func table[T any](header string, row func(T) string) func(io.Writer, []T) error {
	return func(w io.Writer, items []T) error {
		tw := newTabWriter(w)
		fmt.Fprintln(tw, header)
		for _, it := range items {
			fmt.Fprintln(tw, row(it))
		}
		return tw.Flush()
	}
}

// newTabWriter aligns the columns of a table or the values of a
// "name:\tvalue" listing.
func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jsonLine(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// subcommand runs one command of a group such as "secret create".
type subcommand func(ctx context.Context, args []string, stdio *IO) error

// dispatch runs the subcommand args[0] of group, or prints help.
func dispatch(ctx context.Context, group, help string, subs map[string]subcommand, args []string, stdio *IO) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		io.WriteString(stdio.Out, strings.TrimLeft(help, "\n"))
		if len(args) == 0 {
			return &usageError{msg: group + ": want a command", hint: "run `standin " + group + " --help`"}
		}
		return nil
	}
	sub, ok := subs[args[0]]
	if !ok {
		return &usageError{msg: group + ": unknown command " + showWord(args[0]), hint: "run `standin " + group + " --help`"}
	}
	return sub(ctx, args[1:], stdio)
}
