package policy

import (
	"fmt"
	"strings"
)

// MatchHost reports whether host matches pattern (exact, or "*.d" matching
// any name below d but not d itself), case-insensitively.
//
// Case folding is ASCII only: strings.EqualFold would let "\u212a" (KELVIN
// SIGN) match "k", and DNS names are ASCII (internationalized names travel
// as punycode). One trailing dot on either side is ignored.
func MatchHost(pattern, host string) bool {
	p, h := NormalizeHost(pattern), NormalizeHost(host)
	if h == "" {
		return false
	}
	if d, ok := strings.CutPrefix(p, "*."); ok {
		return !strings.Contains(d, "*") && matchWildcard(d, h)
	}
	return !strings.Contains(p, "*") && p == h
}

// matchWildcard reports whether host is strictly below domain; both
// normalized.
func matchWildcard(domain, host string) bool {
	if domain == "" || len(host) <= len(domain)+1 {
		return false
	}
	head, ok := strings.CutSuffix(host, "."+domain)
	// "x..example.com" has an empty label: not a name below example.com.
	return ok && head != "" && !strings.HasSuffix(head, ".")
}

// NormalizeHost lowercases h's ASCII letters and nothing else, as DNS
// names compare (RFC 4343), and drops one trailing dot. Every host name
// standin compares goes through it, never strings.ToLower, which folds
// some non-ASCII letters into ASCII ones (the Kelvin sign into "k"): a
// name could then pass for an allowed one it only resembles.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(asciiLower(h), ".")
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// normalizeDomain validates a host name (RFC 1035 preferred syntax, as
// relaxed by RFC 1123 to allow a leading digit) and returns it lowercased
// without a trailing dot, or the reason it is not one.
func normalizeDomain(s string) (string, string) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", "empty domain name"
	}
	if len(s) > 253 {
		return "", "domain name longer than 253 characters"
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if reason := checkLabel(l); reason != "" {
			return "", reason
		}
	}
	// A name whose last label is all digits is an IPv4 address in some
	// notation ("127.1", "10.0x1") to URL parsers and resolvers, and no TLD
	// is numeric (RFC 3696 section 2). The WHATWG URL standard also reads a
	// "0x" hex last label as a number.
	if isIPv4Number(labels[len(labels)-1]) {
		return "", "looks like an IP address but is not a valid one"
	}
	return asciiLower(s), ""
}

func checkLabel(l string) string {
	if l == "" {
		return "empty label in domain name"
	}
	if len(l) > 63 {
		return fmt.Sprintf("label %q longer than 63 characters", clip(l))
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case c >= 0x80:
			return "non-ASCII domain name; write internationalized names in punycode (xn--...)"
		default:
			return fmt.Sprintf("invalid character %q in domain name", c)
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Sprintf("label %q starts or ends with a hyphen", l)
	}
	return ""
}

// isIPv4Number reports whether a label is decimal digits or "0x" followed by
// hex digits (possibly none, as WHATWG URL reads "0x" as 0).
func isIPv4Number(s string) bool {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		for i := 2; i < len(s); i++ {
			c := s[i] | 0x20 // ASCII lower for letters; digits unchanged
			if !('0' <= s[i] && s[i] <= '9') && !('a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
