package refconv

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog/internal/datafile"
)

// Markdown renders docs/PROVIDERS.md: what standin serves, and what not and
// why.
func Markdown(f datafile.File) []byte {
	var supported, unsupported []datafile.Provider
	for _, p := range f.Providers {
		if len(p.Hosts) > 0 {
			supported = append(supported, p)
		} else {
			unsupported = append(unsupported, p)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Providers\n\n")
	fmt.Fprintf(&b, "<!-- %s -->\n\n", Note)
	fmt.Fprintf(&b, "standin knows %d providers: for each, the hosts a secret is sent to, where the\n", len(supported))
	fmt.Fprintf(&b, "credential goes in a request to each (the auth slot), and the shapes of its keys, so\n")
	fmt.Fprintf(&b, "stand-ins look real. Several slots on one host are alternatives: the gateway swaps the\n")
	fmt.Fprintf(&b, "stand-in in whichever one the client used. `{value}` is the credential.\n\n")
	fmt.Fprintf(&b, "Any other service works as a custom secret: give its hosts and slots yourself.\n\n")

	fmt.Fprintf(&b, "## Supported\n\n")
	fmt.Fprintf(&b, "| Provider | Environment | Hosts and slots | Key formats |\n")
	fmt.Fprintf(&b, "|---|---|---|---|\n")
	for _, p := range supported {
		env := "`" + p.EnvVar + "`"
		for _, e := range p.OtherEnvVars {
			env += ", `" + e + "`"
		}
		var hosts []string
		for i := 0; i < len(p.Hosts); {
			h := p.Hosts[i].Host
			var slots []string
			for ; i < len(p.Hosts) && p.Hosts[i].Host == h; i++ {
				slots = append(slots, SlotSummary(p.Hosts[i].Auth))
			}
			hosts = append(hosts, "`"+h+"`: "+strings.Join(slots, " or "))
		}
		for _, u := range p.Unsupported {
			hosts = append(hosts, "~~`"+u.Host+"`~~: "+u.Reason)
		}
		var formats []string
		for _, ft := range p.Formats {
			s := ft.Name
			if ft.Prefix != "" {
				s = "`" + ft.Prefix + "` " + s
			}
			if ft.Checksum != "" {
				s += " (" + ft.Checksum + ")"
			}
			formats = append(formats, s)
		}
		fmt.Fprintf(&b, "| `%s` %s | %s | %s | %s |\n", p.ID, cell(p.Name), env,
			cell(strings.Join(hosts, "<br>")), cell(strings.Join(formats, "<br>")))
	}

	fmt.Fprintf(&b, "\n## Not supported\n\n")
	fmt.Fprintf(&b, "standin swaps a credential only in a header, Basic auth or a query parameter, after\n")
	fmt.Fprintf(&b, "every check; never in a body or a URL path (an allowed host that stores them would\n")
	fmt.Fprintf(&b, "publish it), and it does not sign requests. These providers have no host it can serve:\n\n")
	fmt.Fprintf(&b, "| Provider | Host | Reason |\n")
	fmt.Fprintf(&b, "|---|---|---|\n")
	for _, p := range unsupported {
		for _, u := range p.Unsupported {
			fmt.Fprintf(&b, "| `%s` %s | `%s` | %s |\n", p.ID, cell(p.Name), u.Host, cell(u.Reason))
		}
	}
	return b.Bytes()
}

// SlotSummary describes an auth slot in a few words.
func SlotSummary(a client.AuthSlot) string {
	switch a.Type {
	case client.SlotBearer:
		h := a.Header
		if h == "" {
			h = "Authorization"
		}
		return "`" + h + ": Bearer {value}`"
	case client.SlotHeader:
		return "`" + a.Header + ": " + a.Template + "`"
	case client.SlotBasic:
		if a.SecretIn == "username" {
			return "Basic, `{value}` as user name"
		}
		if a.Username != "" {
			return "Basic, user `" + a.Username + "`, `{value}` as password"
		}
		return "Basic, `{value}` as password"
	case client.SlotQuery:
		return "`?" + a.Param + "={value}`"
	}
	return a.Type
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
