package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/standin/standin/client"
)

const secretHelp = `
Usage: standin secret COMMAND

Commands:
  create NAME --provider ID       store a credential for a preset provider
  create NAME --host HOST[=AUTH]  store a custom credential (--host repeats)
  list                            list secrets (metadata only)
  get NAME                        show one secret's metadata
  rotate NAME                     replace the value; sandboxes keep working
  delete NAME                     delete; every stand-in for it stops working
  sandboxes NAME                  sandboxes the secret is bound to
  activity NAME                   requests made with the secret

Values are read from stdin, or prompted for without echo on a terminal;
never from a flag, where other users could read them in the process list.
No command ever prints a value.

Examples:
  printf %s "$OPENAI_API_KEY" | standin secret create openai-prod --provider openai
  standin secret create gh-bot --provider github < token.txt
  printf %s "$KEY" | standin secret create internal --host llm.corp.example --auth 'header:X-Api-Key'
  standin secret rotate openai-prod < new-key.txt
  standin secret activity openai-prod --status 4xx --since 1h
`

func cmdSecret(ctx context.Context, args []string, stdio *IO) error {
	return dispatch(ctx, "secret", secretHelp, map[string]subcommand{
		"create": secretCreate, "list": secretList, "ls": secretList,
		"get": secretGet, "show": secretGet, "rotate": secretRotate,
		"delete": secretDelete, "rm": secretDelete,
		"sandboxes": secretSandboxes, "activity": secretActivity,
	}, args, stdio)
}

const secretCreateHelp = `
Usage: standin secret create NAME (--provider ID | --host HOST[=AUTH]...) [flags]

Stores a credential, encrypted. The value comes from stdin or a hidden prompt.
A preset (see "standin providers") knows the hosts and how the key is sent;
--host entries replace its hosts. A custom secret needs --host.

AUTH says where the credential goes (default from --auth, else bearer):
  bearer                  Authorization: Bearer <key>
  header:NAME[:TEMPLATE]  header NAME with TEMPLATE, {value} marks the key
                          (default "{value}"), e.g. header:Authorization:token {value}
  basic[:USER]            HTTP basic auth, key as password (USER fixed if given)
  basic-user              HTTP basic auth, key as user name, empty password
  query:PARAM             URL query parameter PARAM
HOST is exact (api.example.com) or a wildcard (*.example.com), at most 16.

Examples:
  printf %s "$ANTHROPIC_API_KEY" | standin secret create anthropic-prod --provider anthropic
  standin secret create gh --provider github < token.txt
  printf %s "$KEY" | standin secret create llm --host llm.corp.example --auth 'header:X-Api-Key'
  printf %s "$KEY" | standin secret create git --host 'api.git.example=bearer' --host 'git.example=basic:x-access-token'
`

func secretCreate(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret create", secretCreateHelp, stdio)
	provider := fs.String("provider", "", "provider preset id (see `standin providers`)")
	var hosts multiFlag
	fs.Var(&hosts, "host", "host pattern, optionally =AUTH (repeatable)")
	auth := fs.String("auth", "bearer", "auth slot for --host entries without =AUTH")
	desc := fs.String("description", "", "free-text description")
	asJSON := jsonFlag(fs)
	pos, err := parse(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	req := client.SecretCreate{Name: pos[0], Provider: *provider, Description: *desc}
	for _, h := range hosts {
		ha, err := parseHostAuth(h, *auth)
		if err != nil {
			return err
		}
		req.Hosts = append(req.Hosts, ha)
	}
	if req.Provider == "" && len(req.Hosts) == 0 {
		return &usageError{msg: "secret create: give --provider ID or at least one --host",
			hint: "run `standin providers` for preset ids"}
	}
	c, err := connect()
	if err != nil {
		return err
	}
	v, err := readValue(stdio, fmt.Sprintf("Value for secret %q (input hidden): ", req.Name))
	if err != nil {
		return err
	}
	req.Value = string(v)
	clear(v)
	s, err := c.CreateSecret(ctx, req)
	req.Value = ""
	return output(stdio, *asJSON, s, err, func(w io.Writer, s client.Secret) error {
		fmt.Fprintf(w, "created secret %s (%s, stand-in format: %s)\n", s.Name, s.Provider, s.Format)
		return nil
	})
}

// parseHostAuth parses HOST[=AUTH].
func parseHostAuth(s, defAuth string) (client.HostAuth, error) {
	host, spec, ok := strings.Cut(s, "=")
	if !ok {
		spec = defAuth
	}
	slot, err := parseAuth(spec)
	if err != nil {
		return client.HostAuth{}, err
	}
	return client.HostAuth{Host: host, Auth: slot}, nil
}

func parseAuth(spec string) (client.AuthSlot, error) {
	kind, rest, _ := strings.Cut(spec, ":")
	bad := func(msg string) (client.AuthSlot, error) {
		return client.AuthSlot{}, &usageError{msg: "auth (of --auth or --host HOST=AUTH): " + msg,
			hint: "use bearer, header:NAME[:TEMPLATE], basic[:USER], basic-user or query:PARAM"}
	}
	switch kind {
	case "bearer":
		if rest != "" {
			return bad("bearer takes no argument")
		}
		return client.AuthSlot{Type: client.SlotBearer}, nil
	case "header":
		name, tmpl, _ := strings.Cut(rest, ":")
		if name == "" {
			return bad("header needs a name, e.g. header:X-Api-Key")
		}
		if tmpl == "" {
			tmpl = "{value}"
		}
		return client.AuthSlot{Type: client.SlotHeader, Header: name, Template: tmpl}, nil
	case "basic":
		return client.AuthSlot{Type: client.SlotBasic, Username: rest, SecretIn: "password"}, nil
	case "basic-user":
		return client.AuthSlot{Type: client.SlotBasic, SecretIn: "username"}, nil
	case "query":
		if rest == "" {
			return bad("query needs a parameter name, e.g. query:api_key")
		}
		return client.AuthSlot{Type: client.SlotQuery, Param: rest}, nil
	}
	return bad("unknown kind")
}

func secretList(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret list", "\nUsage: standin secret list [--json]\n\nLists secrets (never their values).\n\nExamples:\n  standin secret list\n  standin secret list --json\n", stdio)
	asJSON := jsonFlag(fs)
	_, c, err := parseConnect(fs, args, 0, 0, "no arguments")
	if err != nil {
		return err
	}
	ss, err := c.ListSecrets(ctx)
	return output(stdio, *asJSON, ss, err, table("NAME\tPROVIDER\tVERSION\tHOSTS\tROTATED", func(s client.Secret) string {
		return fmt.Sprintf("%s\t%s\t%d\t%s\t%s", s.Name, s.Provider, s.Version, hostList(s.Hosts), s.RotatedAt.Format(time.RFC3339))
	}))
}

func hostList(hs []client.HostAuth) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Host)
	}
	return strings.Join(out, ",")
}

func secretGet(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret get", "\nUsage: standin secret get NAME [--json]\n\nShows a secret's metadata: provider, hosts and auth slots, stand-in format, version. Never the value.\n\nExamples:\n  standin secret get openai-prod\n", stdio)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	s, err := c.GetSecret(ctx, pos[0])
	return output(stdio, *asJSON, s, err, printSecret)
}

func printSecret(w io.Writer, s client.Secret) error {
	tw := newTabWriter(w)
	fmt.Fprintf(tw, "name:\t%s\nprovider:\t%s\nformat:\t%s\nversion:\t%d\ncreated:\t%s\nrotated:\t%s\n",
		s.Name, s.Provider, s.Format, s.Version, s.CreatedAt.Format(time.RFC3339), s.RotatedAt.Format(time.RFC3339))
	if s.Description != "" {
		fmt.Fprintf(tw, "description:\t%s\n", s.Description)
	}
	for _, h := range s.Hosts {
		fmt.Fprintf(tw, "host:\t%s\t%s\n", h.Host, describeSlot(h.Auth))
	}
	return tw.Flush()
}

func describeSlot(a client.AuthSlot) string {
	switch a.Type {
	case client.SlotBearer:
		return "Authorization: Bearer <key>"
	case client.SlotHeader:
		return a.Header + ": " + strings.ReplaceAll(a.Template, "{value}", "<key>")
	case client.SlotBasic:
		if a.SecretIn == "username" {
			return "basic auth, key as user name"
		}
		if a.Username != "" {
			return "basic auth " + a.Username + ":<key>"
		}
		return "basic auth, key as password"
	case client.SlotQuery:
		return "query ?" + a.Param + "=<key>"
	}
	return a.Type
}

func secretRotate(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret rotate", "\nUsage: standin secret rotate NAME [--json]\n\nReplaces a secret's value (from stdin or a hidden prompt). Running sandboxes keep their\nstand-ins; the next request uses the new value.\n\nExamples:\n  standin secret rotate openai-prod < new-key.txt\n", stdio)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	v, err := readValue(stdio, fmt.Sprintf("New value for secret %q (input hidden): ", pos[0]))
	if err != nil {
		return err
	}
	s, err := c.RotateSecret(ctx, pos[0], string(v))
	clear(v)
	return output(stdio, *asJSON, s, err, func(w io.Writer, s client.Secret) error {
		fmt.Fprintf(w, "rotated secret %s to version %d\n", s.Name, s.Version)
		return nil
	})
}

func secretDelete(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret delete", "\nUsage: standin secret delete NAME\n\nDeletes a secret and its bindings: every stand-in for it stops working at once.\n\nExamples:\n  standin secret delete openai-old\n", stdio)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	return done(stdio, c.DeleteSecret(ctx, pos[0]), "deleted secret %s\n", pos[0])
}

func secretSandboxes(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret sandboxes", "\nUsage: standin secret sandboxes NAME [--json]\n\nLists the sandboxes a secret is bound to, and under which variable.\n\nExamples:\n  standin secret sandboxes anthropic-prod\n", stdio)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	bs, err := c.SecretSandboxes(ctx, pos[0])
	return output(stdio, *asJSON, bs, err, table("SANDBOX\tENV VAR\tBOUND", func(b client.Binding) string {
		return fmt.Sprintf("%s\t%s\t%s", b.Sandbox, b.EnvVar, b.CreatedAt.Format(time.RFC3339))
	}))
}
