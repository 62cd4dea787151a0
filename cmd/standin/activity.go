package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/standin/standin/client"
)

const activityHelp = `
Usage: standin secret activity NAME [flags]

Lists the requests made with a secret, newest first: time, sandbox, method,
host, path (query values removed), status, latency, outcome. Refused
requests are listed too. With --follow, prints new records as they arrive
(oldest first) until interrupted.

--since and --until take RFC 3339 times or durations back from now (90s, 1h).

Examples:
  standin secret activity anthropic-prod
  standin secret activity anthropic-prod --sandbox agent-1 --status 4xx --since 24h
  standin secret activity anthropic-prod --follow
  standin secret activity anthropic-prod --json --limit 1000
`

func secretActivity(ctx context.Context, args []string, stdio *IO) error {
	fs := newFlags("secret activity", activityHelp, stdio)
	sandbox := fs.String("sandbox", "", "only this sandbox")
	status := fs.String("status", "", "only this status class: 2xx, 3xx, 4xx or 5xx")
	since := fs.String("since", "", "only records at or after this time (RFC 3339 or duration ago)")
	until := fs.String("until", "", "only records before this time (RFC 3339 or duration ago)")
	limit := fs.Int("limit", 50, "how many records (at most 1000)")
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor")
	follow := fs.Bool("follow", false, "keep printing new records")
	interval := fs.Duration("interval", time.Second, "how often --follow polls")
	asJSON := fs.Bool("json", false, "print JSON (with --follow: one object per line)")
	pos, err := parse(fs, args, 1, 1, "NAME")
	if err != nil {
		return err
	}
	f := client.ActivityFilter{Sandbox: *sandbox, Status: *status, Cursor: *cursor, Limit: *limit}
	now := time.Now()
	if f.Since, err = parseWhen(*since, now, "since"); err != nil {
		return err
	}
	if f.Until, err = parseWhen(*until, now, "until"); err != nil {
		return err
	}
	c, err := connect()
	if err != nil {
		return err
	}
	page, err := c.SecretActivity(ctx, pos[0], f)
	if err != nil {
		return apiErr(err)
	}
	if !*follow {
		if *asJSON {
			return printJSON(stdio.Out, page)
		}
		if err := table(activityHeader, activityRow)(stdio.Out, page.Items); err != nil {
			return err
		}
		if page.NextCursor != "" {
			fmt.Fprintf(stdio.Err, "more: --cursor %s\n", page.NextCursor)
		}
		return nil
	}

	// Follow: print the latest page oldest first, then poll for newer ones.
	var last int64
	items := page.Items
	for i := len(items) - 1; i >= 0; i-- {
		printFollowed(stdio.Out, items[i], *asJSON)
	}
	if len(items) > 0 {
		last, _ = strconv.ParseInt(items[0].ID, 10, 64)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.Cursor, f.After, f.Limit = "", strconv.FormatInt(last, 10), 1000
		p, err := c.SecretActivity(ctx, pos[0], f)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return apiErr(err)
		}
		for _, a := range p.Items {
			printFollowed(stdio.Out, a, *asJSON)
			if id, err := strconv.ParseInt(a.ID, 10, 64); err == nil && id > last {
				last = id
			}
		}
	}
}

func printFollowed(w io.Writer, a client.Activity, asJSON bool) {
	if asJSON {
		b, _ := jsonLine(a)
		fmt.Fprintln(w, b)
		return
	}
	tw := newTabWriter(w)
	fmt.Fprintln(tw, activityRow(a))
	tw.Flush()
}

const activityHeader = "TIME\tSANDBOX\tMETHOD\tHOST\tPATH\tSTATUS\tLATENCY\tOUTCOME"

func activityRow(a client.Activity) string {
	outcome := a.Outcome
	if a.Reason != "" {
		outcome += " (" + a.Reason + ")"
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%.1fms\t%s", a.Time.Format(time.RFC3339), a.Sandbox, a.Method,
		a.Host, a.Path, a.Status, a.LatencyMS, outcome)
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time, flagName string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, &usageError{msg: fmt.Sprintf("--%s: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (90m)", flagName)}
}
