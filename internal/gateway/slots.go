package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/standin/standin/client"
)

// Errors of SetToken. None of them ever holds a token or value.
var (
	// ErrSlotEmpty means the request carries no token in the slot.
	ErrSlotEmpty = errors.New("no token in auth slot")
	// ErrSlotMultiple means the slot's header or parameter appears more
	// than once, so which one the upstream reads is ambiguous.
	ErrSlotMultiple = errors.New("auth slot appears more than once")
	// ErrSlotValue means the value cannot be written into the slot (a
	// control character in a header, a colon in a Basic user name).
	ErrSlotValue = errors.New("value does not fit auth slot")
)

// templateValue is what a header template's {value} is written as.
const templateValue = "{value}"

// TokenIn returns the credential a request carries in slot, if any:
// the {value} part of a header template, the token of "Bearer <token>"
// (scheme case-insensitive), the password (or user, per SecretIn) of Basic
// auth, or the query parameter. Several values of one header or parameter:
// ok is false and multiple is true (the gateway refuses such requests on a
// secret host, since which one the upstream reads is ambiguous).
//
// Matching is exact, so that what is found is exactly what SetToken
// replaces: a header template must match the whole header value, its text
// around {value} byte for byte (an empty Template means "{value}"); a Bearer
// token is everything after "Bearer " (one space, nothing trimmed); a Basic
// credential is standard base64 (padded or not) of user:password, split at
// the first colon; Username is not checked, since only the secret half is
// swapped. A query parameter's name and value are unescaped as by
// url.ParseQuery, with only "&" separating parameters. An empty token is no
// token.
func TokenIn(r *http.Request, slot client.AuthSlot) (token string, ok, multiple bool) {
	loc, err := findSlot(r, slot)
	if errors.Is(err, ErrSlotMultiple) {
		return "", false, true
	}
	if err != nil {
		return "", false, false
	}
	return loc.token, true, false
}

// SetToken writes value into slot of r in place of the token TokenIn found,
// keeping everything else of that header or query byte for byte (e.g. the
// Basic user name). It touches no other header, the body, or the path.
//
// It returns ErrSlotEmpty or ErrSlotMultiple when TokenIn would not return
// a token, and ErrSlotValue when value cannot be written there. Only
// r.URL.RawQuery changes for a query slot; r.RequestURI is the caller's.
func SetToken(r *http.Request, slot client.AuthSlot, value []byte) error {
	loc, err := findSlot(r, slot)
	if err != nil {
		return fmt.Errorf("set %s token: %w", slot.Type, err)
	}
	if len(value) == 0 {
		return fmt.Errorf("set %s token: empty value: %w", slot.Type, ErrSlotValue)
	}
	v := string(value)
	if slot.Type == client.SlotQuery {
		parts := strings.Split(r.URL.RawQuery, "&")
		parts[loc.index] = loc.key + "=" + url.QueryEscape(v)
		r.URL.RawQuery = strings.Join(parts, "&")
		return nil
	}
	var hv string
	switch slot.Type {
	case client.SlotBasic:
		user, pass := loc.user, v
		if slot.SecretIn == "username" {
			if strings.Contains(v, ":") {
				// RFC 7617: a user-id cannot contain a colon.
				return fmt.Errorf("set basic token: colon in user name: %w", ErrSlotValue)
			}
			user, pass = v, loc.pass
		}
		hv = loc.pre + loc.enc.EncodeToString([]byte(user+":"+pass))
	default: // header, bearer
		hv = loc.pre + v + loc.suf
	}
	if !httpguts.ValidHeaderFieldValue(hv) {
		return fmt.Errorf("set %s token: invalid header value: %w", slot.Type, ErrSlotValue)
	}
	r.Header[loc.key][loc.index] = hv
	return nil
}

// slotLoc is where a slot's token sits in a request.
type slotLoc struct {
	token string
	// key and index locate the header value (r.Header[key][index]) or the
	// query parameter (index among RawQuery split at "&"; key is the raw,
	// still escaped name).
	key   string
	index int
	// pre and suf surround the token in a header value; for basic, pre is
	// the scheme and what follows is enc(user:pass).
	pre, suf   string
	user, pass string
	enc        *base64.Encoding
}

// findSlot locates slot's token in r. Errors are ErrSlotEmpty or
// ErrSlotMultiple, wrapped with what was looked for.
func findSlot(r *http.Request, slot client.AuthSlot) (slotLoc, error) {
	switch slot.Type {
	case client.SlotQuery:
		return findQuery(r, slot.Param)
	case client.SlotHeader, client.SlotBearer, client.SlotBasic:
	default:
		return slotLoc{}, fmt.Errorf("unknown slot type %q: %w", slot.Type, ErrSlotEmpty)
	}
	name := slot.Header
	if name == "" && slot.Type != client.SlotHeader {
		name = "Authorization"
	}
	if name == "" {
		return slotLoc{}, fmt.Errorf("header slot without a header name: %w", ErrSlotEmpty)
	}
	// Look at every key equal to name in any case: a Header filled by
	// hand need not be canonical, and each copy would reach the upstream.
	// ASCII only: strings.EqualFold would take "X-Api-\u212Aey" (Kelvin
	// sign) for X-Api-Key and put the value in a header the upstream reads
	// under another name.
	var loc slotLoc
	found := 0
	for k, vs := range r.Header {
		if !asciiEqualFold(k, name) {
			continue
		}
		found += len(vs)
		if len(vs) > 0 {
			loc.key, loc.index = k, 0
		}
	}
	switch {
	case found == 0:
		return slotLoc{}, fmt.Errorf("header %q: %w", name, ErrSlotEmpty)
	case found > 1:
		return slotLoc{}, fmt.Errorf("header %q: %w", name, ErrSlotMultiple)
	}
	v := r.Header[loc.key][0]
	ok := false
	switch slot.Type {
	case client.SlotHeader:
		ok = headerToken(&loc, v, slot.Template)
	case client.SlotBearer:
		ok = schemeToken(&loc, v, "Bearer")
	case client.SlotBasic:
		ok = basicToken(&loc, v, slot.SecretIn == "username")
	}
	if !ok || loc.token == "" {
		return slotLoc{}, fmt.Errorf("header %q: %w", name, ErrSlotEmpty)
	}
	return loc, nil
}

// headerToken matches v against template, whose {value} is the token.
func headerToken(loc *slotLoc, v, template string) bool {
	if template == "" {
		template = templateValue
	}
	pre, suf, ok := strings.Cut(template, templateValue)
	if !ok || len(v) < len(pre)+len(suf) || !strings.HasPrefix(v, pre) || !strings.HasSuffix(v, suf) {
		return false
	}
	loc.pre, loc.suf = pre, suf
	loc.token = v[len(pre) : len(v)-len(suf)]
	return true
}

// schemeToken matches "<scheme> <token>", scheme in any case (RFC 9110
// section 11.1).
func schemeToken(loc *slotLoc, v, scheme string) bool {
	n := len(scheme) + 1
	if len(v) < n || !asciiEqualFold(v[:len(scheme)], scheme) || v[len(scheme)] != ' ' {
		return false
	}
	loc.pre, loc.token = v[:n], v[n:]
	return true
}

// basicToken matches "Basic base64(user:pass)" (RFC 7617); the token is the
// password, or the user when secretInUser.
func basicToken(loc *slotLoc, v string, secretInUser bool) bool {
	if !schemeToken(loc, v, "Basic") {
		return false
	}
	enc := base64.StdEncoding
	if len(loc.token)%4 != 0 {
		enc = base64.RawStdEncoding // some clients drop the padding
	}
	dec, err := enc.DecodeString(loc.token)
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(dec), ":")
	if !ok {
		return false
	}
	loc.enc, loc.user, loc.pass = enc, user, pass
	loc.token = pass
	if secretInUser {
		loc.token = user
	}
	return true
}

// findQuery finds the parameter param in r's raw query. It splits the
// query itself rather than using url.ParseQuery so that SetToken can
// rewrite one parameter and keep every other byte and the order.
func findQuery(r *http.Request, param string) (slotLoc, error) {
	if r.URL == nil || param == "" {
		return slotLoc{}, fmt.Errorf("query parameter %q: %w", param, ErrSlotEmpty)
	}
	var loc slotLoc
	found := 0
	valid := false
	for i, part := range strings.Split(r.URL.RawQuery, "&") {
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || key != param {
			continue
		}
		found++
		val, err := url.QueryUnescape(rawVal)
		loc.key, loc.index, loc.token, valid = rawKey, i, val, err == nil
	}
	switch {
	case found > 1:
		return slotLoc{}, fmt.Errorf("query parameter %q: %w", param, ErrSlotMultiple)
	case found == 0 || !valid || loc.token == "":
		return slotLoc{}, fmt.Errorf("query parameter %q: %w", param, ErrSlotEmpty)
	}
	return loc, nil
}

// asciiEqualFold reports whether a and b are equal ignoring ASCII case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
