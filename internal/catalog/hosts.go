package catalog

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/policy"
)

// MaxHosts is the most host entries a secret may have.
const MaxHosts = 16

// ErrInvalidHosts is wrapped by every error of ValidateHosts.
var ErrInvalidHosts = errors.New("invalid hosts")

// HostError is a problem with one entry of a host list.
type HostError struct {
	// Index is the entry's position in the list.
	Index int
	Host  string
	// Reason says what is wrong and what to do.
	Reason string
}

func (e *HostError) Error() string {
	return fmt.Sprintf("host %d (%q): %s", e.Index+1, e.Host, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidHosts) hold.
func (e *HostError) Is(target error) bool { return target == ErrInvalidHosts }

// ValidateHosts checks a secret's host list: 1..16 entries, each host exact
// or "*.domain" (never a wildcard on a public suffix such as *.com or
// *.co.uk), each slot complete (header template contains {value} once, query
// has a param, ...). Errors name the entry and say what to do.
//
// A host may appear more than once with different slots: alternatives the
// gateway tries in turn (GitHub takes "Bearer" and "token").
func ValidateHosts(hosts []client.HostAuth) error {
	switch {
	case len(hosts) == 0:
		return fmt.Errorf("%w: give at least one host the secret may be sent to", ErrInvalidHosts)
	case len(hosts) > MaxHosts:
		return fmt.Errorf("%w: %d hosts given, at most %d are allowed; use a wildcard such as *.example.com", ErrInvalidHosts, len(hosts), MaxHosts)
	}
	for i, h := range hosts {
		reason := hostPatternProblem(h.Host)
		if reason == "" {
			reason = slotProblem(h.Auth)
		}
		if reason == "" {
			for _, prev := range hosts[:i] {
				if prev == h {
					reason = "same host and slot as an earlier entry; remove one"
					break
				}
			}
		}
		if reason != "" {
			return &HostError{Index: i, Host: h.Host, Reason: reason}
		}
	}
	return nil
}

const hostHint = "give a host name like api.example.com, without scheme or path"

// hostPatternProblem says what is wrong with a host pattern ("" if
// nothing).
func hostPatternProblem(host string) string {
	switch {
	case host == "":
		return "empty host: " + hostHint
	case strings.ContainsAny(host, "/:?#@ \t"):
		return hostHint + " (and without port)"
	case strings.ToLower(host) != host:
		return fmt.Sprintf("host names are lower case: use %q", strings.ToLower(host))
	}
	name, wild := strings.CutPrefix(host, "*.")
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() && !wild {
		// An internal service (an LLM gateway at 10.1.2.3) has no name.
		// The gateway still needs a CIDR allow rule to reach it.
		return ""
	}
	if strings.Contains(name, "*") {
		return "a wildcard must be the whole first label, as in *.example.com"
	}
	if reason := dnsNameProblem(name); reason != "" {
		return reason
	}
	if wild {
		// A wildcard on a public suffix covers sites of unrelated owners
		// (*.github.io is every GitHub Pages site), any of which could
		// receive the real credential.
		if suffix, _ := publicsuffix.PublicSuffix(name); suffix == name {
			return fmt.Sprintf("%q is a public suffix, where anyone can register names; use a domain you trust, like *.example.%s", name, name)
		}
	}
	return ""
}

func dnsNameProblem(name string) string {
	if _, err := netip.ParseAddr(name); err == nil {
		return "give a host name like api.example.com, not an IP address"
	}
	if strings.HasSuffix(name, ".") {
		return "remove the trailing dot"
	}
	if len(name) > 253 {
		return "host name longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "each dot-separated part must be 1 to 63 letters, digits or '-' (not at either end): " + hostHint
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Sprintf("character %q is not allowed in a host name: %s", c, hostHint)
			}
		}
	}
	// An all-numeric last label is not a name (it is part of an address).
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "give a host name like api.example.com, not an IP address"
	}
	return ""
}

// Headers the gateway itself owns or removes before the swap.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, "upgrade": true, "te": true,
	"trailer": true, "proxy-authorization": true, "proxy-authenticate": true,
	"proxy-connection": true,
}

// slotProblem says what is wrong with an auth slot ("" if nothing).
func slotProblem(a client.AuthSlot) string {
	unused := func(fields ...string) string {
		names := []string{"header", "template", "username", "secretIn", "param"}
		values := []string{a.Header, a.Template, a.Username, a.SecretIn, a.Param}
		for i, n := range names {
			if values[i] != "" && !contains(fields, n) {
				return fmt.Sprintf("%s is not used by auth type %q; remove it", n, a.Type)
			}
		}
		return ""
	}
	switch a.Type {
	case client.SlotBearer:
		if a.Header != "" {
			if r := headerProblem(a.Header); r != "" {
				return r
			}
		}
		return unused("header")
	case client.SlotHeader:
		if a.Header == "" {
			return "auth type header needs a header name, like X-Api-Key"
		}
		if r := headerProblem(a.Header); r != "" {
			return r
		}
		if n := strings.Count(a.Template, "{value}"); n != 1 {
			return fmt.Sprintf("template must contain {value} exactly once (found %d), like \"Token {value}\"", n)
		}
		if hasControl(a.Template) {
			return "template must not contain control characters"
		}
		return unused("header", "template")
	case client.SlotBasic:
		if a.Header != "" {
			if r := headerProblem(a.Header); r != "" {
				return r
			}
		}
		switch a.SecretIn {
		case "", "password":
		case "username":
			if a.Username != "" {
				return "username is fixed, so the secret cannot go in it; remove username or set secretIn to password"
			}
		default:
			return fmt.Sprintf("secretIn %q: use password or username", a.SecretIn)
		}
		if strings.Contains(a.Username, ":") || hasControl(a.Username) {
			return "username must not contain ':' or control characters"
		}
		return unused("header", "username", "secretIn")
	case client.SlotQuery:
		if a.Param == "" {
			return "auth type query needs a param, the query parameter name (like key)"
		}
		for i := 0; i < len(a.Param); i++ {
			c := a.Param[i]
			if !(isAlnum(c) || strings.IndexByte("-._~", c) >= 0) {
				return fmt.Sprintf("param %q: use letters, digits and - . _ ~ only", a.Param)
			}
		}
		return unused("param")
	case "":
		return "auth type missing: use header, bearer, basic or query"
	}
	return fmt.Sprintf("unknown auth type %q: use header, bearer, basic or query", a.Type)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// headerProblem checks a header name: an RFC 9110 token the gateway does
// not own.
func headerProblem(name string) string {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return fmt.Sprintf("header %q is not a valid header name", name)
		}
	}
	if reservedHeaders[strings.ToLower(name)] {
		return fmt.Sprintf("header %q is managed by the gateway and cannot hold a credential", name)
	}
	return ""
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// SlotFor returns the auth slot for host: an exact entry beats a wildcard.
//
// With several entries for the host, it is the first; SlotsFor returns
// them all.
func SlotFor(hosts []client.HostAuth, host string) (client.AuthSlot, bool) {
	slots := SlotsFor(hosts, host)
	if len(slots) == 0 {
		return client.AuthSlot{}, false
	}
	return slots[0], true
}

// SlotsFor returns every auth slot for host, in list order, from the most
// specific matching pattern: exact entries if any match, else the
// wildcard with the longest domain.
func SlotsFor(hosts []client.HostAuth, host string) []client.AuthSlot {
	// ASCII letters only: see policy.NormalizeHost.
	host = policy.NormalizeHost(host)
	best := -1 // length of the best pattern matched so far; exact wins
	var out []client.AuthSlot
	for _, h := range hosts {
		if !matchHost(h.Host, host) {
			continue
		}
		score := len(h.Host)
		if !strings.HasPrefix(h.Host, "*.") {
			score = 1 << 30
		}
		switch {
		case score > best:
			best, out = score, []client.AuthSlot{h.Auth}
		case score == best:
			out = append(out, h.Auth)
		}
	}
	return out
}

// matchHost reports whether host matches pattern: exactly, or for
// "*.example.com" any name below example.com (one label or more), never
// example.com itself. Same rule as policy.MatchHost, which catalog does not
// import to keep the two packages independent.
func matchHost(pattern, host string) bool {
	if domain, ok := strings.CutPrefix(pattern, "*"); ok && strings.HasPrefix(domain, ".") {
		sub, ok := strings.CutSuffix(host, domain)
		return ok && sub != "" && !strings.HasSuffix(sub, ".")
	}
	return pattern == host
}
