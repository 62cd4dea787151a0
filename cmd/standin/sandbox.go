package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/standin/standin/client"
)

const sandboxHelp = `
Usage: standin sandbox COMMAND

Commands:
  create NAME [--secret ENV=SECRET]... [--allow-out X]... [--deny-out X]...
         [--timeout 30m]    create and start; --timeout stops it after that
                            long (at most 24h), its state becomes "expired"
  list                      list sandboxes
  get NAME                  show a sandbox, its rules and stand-in variables
  delete NAME               delete; its stand-ins stop working at once
  attach NAME ENV=SECRET    bind a secret under an env var
  detach NAME ENV           unbind; the stand-in stops working at once
  network NAME [--allow-out X]... [--deny-out X]... [--inspect all]
                            replace the network rules
  env NAME                  environment for a sandbox standin does not run
                            (a container, a CI job): proxy, stand-ins, CA

Network rules: X is a domain (api.example.com), a wildcard (*.example.com)
or a CIDR (10.0.0.0/8, ::/0). A destination matching a deny rule is refused
unless an allow rule also matches it; no rules means every public
destination. Private, loopback and metadata addresses are reachable only
through an allow CIDR inside their range (10.0.0.0/8, 169.254.169.254/32):
0.0.0.0/0 does not open them.

Examples:
  standin sandbox create agent-1 --secret ANTHROPIC_API_KEY=anthropic-prod \
      --allow-out api.anthropic.com --deny-out 0.0.0.0/0 --deny-out ::/0
  standin sandbox create scratch --timeout 30m
  standin sandbox attach agent-1 GITHUB_TOKEN=gh-bot
  standin sandbox detach agent-1 GITHUB_TOKEN
  standin sandbox network agent-1 --allow-out '*.github.com' --deny-out 0.0.0.0/0
`

func cmdSandbox(ctx context.Context, args []string, stdio *IO) error {
	return dispatch(ctx, "sandbox", sandboxHelp, map[string]subcommand{
		"create": sandboxCreate, "list": sandboxList, "ls": sandboxList,
		"get": sandboxGet, "show": sandboxGet, "delete": sandboxDelete, "rm": sandboxDelete,
		"attach": sandboxAttach, "detach": sandboxDetach, "network": sandboxNetwork,
		"env": sandboxEnv,
	}, args, stdio)
}

// parseBinding parses ENV=SECRET.
func parseBinding(s string) (env, secret string, err error) {
	env, secret, ok := strings.Cut(s, "=")
	if !ok || env == "" || secret == "" {
		return "", "", &usageError{msg: "binding: want ENV=SECRET (not echoed: it may be a credential)",
			hint: "e.g. ANTHROPIC_API_KEY=anthropic-prod"}
	}
	return env, secret, nil
}

func sandboxCreate(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox create", "\nUsage: standin sandbox create NAME [--secret ENV=SECRET]... [--allow-out X]... [--deny-out X]... [--inspect all] [--timeout DURATION]\n"+sandboxHelp[strings.Index(sandboxHelp, "\nNetwork rules"):], stdio)
	var secrets, allow, deny multiFlag
	fs.Var(&secrets, "secret", "bind secret SECRET under env var ENV: ENV=SECRET (repeatable)")
	fs.Var(&allow, "allow-out", "allow a domain, *.domain or CIDR (repeatable)")
	fs.Var(&deny, "deny-out", "deny a domain, *.domain or CIDR (repeatable)")
	inspect := fs.String("inspect", "", `"all" terminates and logs every TLS flow, not only those with a secret`)
	timeout := fs.String("timeout", "", `stop the sandbox after this long ("30m", "2h"; at most 24h); its state becomes "expired"`)
	asJSON := jsonFlag(fs)
	pos, err := parse(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	req := client.SandboxCreate{Name: pos[0], Secrets: map[string]string{}, Timeout: *timeout,
		Network: client.NetworkRules{AllowOut: nonNil(allow), DenyOut: nonNil(deny), Inspect: *inspect}}
	for _, s := range secrets {
		env, sec, err := parseBinding(s)
		if err != nil {
			return err
		}
		if _, dup := req.Secrets[env]; dup {
			return &usageError{msg: fmt.Sprintf("--secret: %s given twice", env)}
		}
		req.Secrets[env] = sec
	}
	c, err := connect()
	if err != nil {
		return err
	}
	sb, err := c.CreateSandbox(ctx, req)
	return output(stdio, *asJSON, sb, err, func(w io.Writer, sb client.Sandbox) error {
		fmt.Fprintf(w, "created sandbox %s\n", sb.Name)
		return printSandbox(w, sb)
	})
}

func nonNil(m multiFlag) []string {
	if m == nil {
		return []string{}
	}
	return m
}

func printSandbox(w io.Writer, sb client.Sandbox) error {
	tw := newTabWriter(w)
	fmt.Fprintf(tw, "name:\t%s\nstate:\t%s\ncreated:\t%s\n", sb.Name, sb.State, sb.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "allow-out:\t%s\ndeny-out:\t%s\n", orNone(sb.Network.AllowOut), orNone(sb.Network.DenyOut))
	if sb.ExpiresAt != nil {
		fmt.Fprintf(tw, "expires:\t%s\n", sb.ExpiresAt.Format(time.RFC3339))
	}
	if sb.Network.Inspect != "" {
		fmt.Fprintf(tw, "inspect:\t%s\n", sb.Network.Inspect)
	}
	for _, b := range sb.Bindings {
		fmt.Fprintf(tw, "env:\t%s=%s\t(secret %s)\n", b.EnvVar, b.StandIn, b.Secret)
	}
	return tw.Flush()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

func sandboxList(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox list", "\nUsage: standin sandbox list [--json]\n\nLists sandboxes.\n\nExamples:\n  standin sandbox list\n", stdio)
	asJSON := jsonFlag(fs)
	_, c, err := parseConnect(fs, args, 0, 0, "no arguments")
	if err != nil {
		return err
	}
	sbs, err := c.ListSandboxes(ctx)
	return output(stdio, *asJSON, sbs, err, table("NAME\tSTATE\tSECRETS\tALLOW-OUT\tDENY-OUT", func(sb client.Sandbox) string {
		var envs []string
		for _, b := range sb.Bindings {
			envs = append(envs, b.EnvVar+"="+b.Secret)
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", sb.Name, sb.State, orNone(envs), orNone(sb.Network.AllowOut), orNone(sb.Network.DenyOut))
	}))
}

func sandboxGet(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox get", "\nUsage: standin sandbox get NAME [--json]\n\nShows a sandbox: state, network rules and the stand-in in each bound variable.\n\nExamples:\n  standin sandbox get agent-1\n", stdio)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	sb, err := c.GetSandbox(ctx, pos[0])
	return output(stdio, *asJSON, sb, err, printSandbox)
}

func sandboxDelete(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox delete", "\nUsage: standin sandbox delete NAME\n\nDeletes a sandbox; its stand-ins stop working at once.\n\nExamples:\n  standin sandbox delete agent-1\n", stdio)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	return done(stdio, c.DeleteSandbox(ctx, pos[0]), "deleted sandbox %s\n", pos[0])
}

func sandboxAttach(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox attach", "\nUsage: standin sandbox attach NAME ENV=SECRET [--stand-in TOKEN] [--json]\n\nBinds a secret to a sandbox under an environment variable and prints the stand-in.\nWith --stand-in, the client's fixed placeholder key is used as the stand-in (it\nis not a secret: it works only from this sandbox, only on the secret's hosts).\n\nExamples:\n  standin sandbox attach agent-1 GITHUB_TOKEN=gh-bot\n  standin sandbox attach ci-job OPENAI_API_KEY=openai --stand-in sk-test-placeholder-key\n", stdio)
	asJSON := jsonFlag(fs)
	standIn := fs.String("stand-in", "", "use this placeholder as the stand-in (16-256 printable characters)")
	pos, err := parse(fs, args, 2, 2, "NAME ENV=SECRET")
	if err != nil {
		return err
	}
	env, sec, err := parseBinding(pos[1])
	if err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	b, err := c.AttachWithStandIn(ctx, pos[0], client.Attach{EnvVar: env, Secret: sec, StandIn: *standIn})
	return output(stdio, *asJSON, b, err, func(w io.Writer, b client.Binding) error {
		fmt.Fprintf(w, "attached %s to sandbox %s as %s=%s\n", b.Secret, b.Sandbox, b.EnvVar, b.StandIn)
		return nil
	})
}

func sandboxDetach(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox detach", "\nUsage: standin sandbox detach NAME ENV\n\nUnbinds the secret under ENV; its stand-in stops working at once.\n\nExamples:\n  standin sandbox detach agent-1 GITHUB_TOKEN\n", stdio)
	pos, c, err := parseConnect(fs, args, 2, 2, "NAME ENV")
	if err != nil {
		return err
	}
	return done(stdio, c.Detach(ctx, pos[0], pos[1]), "detached %s from sandbox %s\n", pos[1], pos[0])
}

func sandboxNetwork(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox network", "\nUsage: standin sandbox network NAME [--allow-out X]... [--deny-out X]... [--inspect all]\n\nReplaces the sandbox's network rules (no flags: no rules, every public destination).\n"+sandboxHelp[strings.Index(sandboxHelp, "\nNetwork rules"):], stdio)
	var allow, deny multiFlag
	fs.Var(&allow, "allow-out", "allow a domain, *.domain or CIDR (repeatable)")
	fs.Var(&deny, "deny-out", "deny a domain, *.domain or CIDR (repeatable)")
	inspect := fs.String("inspect", "", `"all" terminates and logs every TLS flow`)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	sb, err := c.SetNetwork(ctx, pos[0], client.NetworkRules{AllowOut: nonNil(allow), DenyOut: nonNil(deny), Inspect: *inspect})
	return output(stdio, *asJSON, sb, err, func(w io.Writer, sb client.Sandbox) error {
		fmt.Fprintf(w, "replaced network rules of sandbox %s\n", sb.Name)
		return printSandbox(w, sb)
	})
}

const sandboxEnvHelp = `
Usage: standin sandbox env NAME [--json]

Prints what a sandbox that standin does not run (a Docker container, a CI
job) needs in its environment, one NAME=value per line: HTTPS_PROXY and
HTTP_PROXY naming the gateway with this sandbox's proxy credential, each
bound secret's stand-in, and SSL_CERT_FILE, NODE_EXTRA_CA_CERTS,
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and GIT_SSL_CAINFO pointing at standin's
CA certificate (mount it at that path, or get it with "standin ca export").
No real secret value is in it.

Examples:
  standin sandbox env ci-job > ci.env && docker run --env-file ci.env --network host ...
  eval "$(standin sandbox env agent-1 | sed 's/^/export /')"
`

func sandboxEnv(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("sandbox env", sandboxEnvHelp, stdio)
	asJSON := jsonFlag(fs)
	pos, c, err := parseConnect(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	env, err := c.SandboxEnv(ctx, pos[0])
	return output(stdio, *asJSON, env, err, func(w io.Writer, env client.SandboxEnv) error {
		for _, kv := range env.Env {
			fmt.Fprintln(w, kv)
		}
		return nil
	})
}
