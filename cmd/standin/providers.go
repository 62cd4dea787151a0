package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
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
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, 0, "no arguments"); err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	ps, err := c.Providers(ctx)
	if err != nil {
		return apiErr(err)
	}
	if *asJSON {
		return printJSON(stdio.Out, ps)
	}
	tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENV VAR\tHOSTS")
	for _, p := range ps {
		var hosts []string
		for _, h := range p.Hosts {
			hosts = append(hosts, h.Host+" ("+h.Auth.Type+")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.EnvVar, strings.Join(hosts, ", "))
	}
	return tw.Flush()
}
