package main

import (
	"context"
	"fmt"
)

const caHelp = `
Usage: standin ca export

Prints standin's interception CA certificate (PEM). Sandboxes must trust it:
the gateway terminates TLS with certificates it signs for hosts where a
credential is swapped. Sandboxes standin runs trust it already.

Examples:
  standin ca export > standin-ca.pem
  curl --cacert standin-ca.pem --proxy "$HTTPS_PROXY" https://api.openai.com/v1/models
`

func cmdCA(ctx context.Context, args []string, stdio *IO) error {
	return dispatch(ctx, "ca", caHelp, map[string]subcommand{"export": caExport}, args, stdio)
}

func caExport(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("ca export", caHelp, stdio)
	_, c, err := parseConnect(fs, args, 0, 0, "no arguments")
	if err != nil {
		return err
	}
	pem, err := c.CACert(ctx)
	if err != nil {
		return apiErr(err)
	}
	fmt.Fprint(stdio.Out, string(pem))
	return nil
}
