package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/standin/standin/client"
)

const providersHelp = `
Usage: standin providers [--json]

Lists the provider presets: the environment variable SDKs read, the hosts a
secret is sent to and how (bearer, header, basic, query).

Examples:
  standin providers
  standin providers --json | jq '.[] | select(.id=="github")'
`

func cmdProviders(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("providers", providersHelp, stdio)
	asJSON := jsonFlag(fs)
	_, c, err := parseConnect(fs, args, 0, 0, "no arguments")
	if err != nil {
		return err
	}
	ps, err := c.Providers(ctx)
	return output(stdio, *asJSON, ps, err, table("ID\tENV VAR\tHOSTS", func(p client.Provider) string {
		var hosts []string
		for _, h := range p.Hosts {
			hosts = append(hosts, h.Host+" ("+h.Auth.Type+")")
		}
		return fmt.Sprintf("%s\t%s\t%s", p.ID, p.EnvVar, strings.Join(hosts, ", "))
	}))
}
