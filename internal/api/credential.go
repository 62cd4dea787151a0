package api

import (
	"regexp"
	"sync"

	"github.com/standin/standin/internal/catalog"
)

// looksLikeCredential reports whether s, given where a name or other
// clear-text field belongs, looks like a credential pasted into the wrong
// place (arguments in the wrong order, say). Such fields are stored and
// shown in clear, so they are refused.
//
// The test is by shape only: s matches a catalog key format with a
// distinctive prefix, or holds a
// long run of letters and digits that switches between upper case, lower
// case and digits as often as random base62 does. Comparing against the
// stored values' fingerprints would catch more, but would let anyone with
// the API token test guesses of a stored value, one request per guess.
func looksLikeCredential(s string) bool {
	if len(s) < minCredentialRun {
		return false
	}
	for _, re := range formatRegexps() {
		if re.MatchString(s) {
			return true
		}
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isAlnum(s[i]) {
			continue
		}
		if randomLooking(s[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

// minCredentialRun is the shortest run randomLooking considers; shorter
// runs occur in ordinary names ("v2Beta3").
const minCredentialRun = 16

// randomLooking: at least minCredentialRun letters and digits, all three
// classes present, and a class change at 40% or more of the positions.
// Random base62 changes class at about 62% of positions; camelCase words
// with a year ("myServiceApiKey2024") stay near 30%.
func randomLooking(run string) bool {
	if len(run) < minCredentialRun {
		return false
	}
	var seen [3]bool
	changes := 0
	for i := 0; i < len(run); i++ {
		c := class(run[i])
		seen[c] = true
		if i > 0 && class(run[i-1]) != c {
			changes++
		}
	}
	return seen[0] && seen[1] && seen[2] && changes*10 >= (len(run)-1)*4
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func class(c byte) int {
	switch {
	case 'a' <= c && c <= 'z':
		return 0
	case 'A' <= c && c <= 'Z':
		return 1
	}
	return 2
}

var formatRegexps = sync.OnceValue(func() []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range catalog.Providers() {
		for _, f := range p.Formats {
			// Only formats with a distinctive prefix: prefixless ones
			// ("^[A-Za-z0-9_]{20,}$") match ordinary names. A format the
			// catalog cannot compile is the catalog's bug; skipping it only
			// weakens this heuristic.
			if len(f.Prefix) < 3 {
				continue
			}
			if re, err := regexp.Compile(f.Regex); err == nil {
				out = append(out, re)
			}
		}
	}
	return out
})
