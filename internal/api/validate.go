package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/catalog"
	"github.com/standin/standin/internal/policy"
)

// Limits on request fields.
const (
	maxValue       = 8192
	maxDescription = 1024
	maxRules       = 256 // per list
	maxBindings    = 64  // per sandbox create request
)

const nameRule = "1-63 characters: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// validateName checks a secret or sandbox name. The name is not echoed: a
// name that breaks the rule may be a pasted credential.
func validateName(kind, name string) error {
	if nameRE.MatchString(name) {
		if looksLikeCredential(name) {
			return badRequest(CodeInvalidName, "%s name looks like a credential (a key pasted in the wrong place?); a name is %s", kind, nameRule)
		}
		return nil
	}
	if name == "" {
		return badRequest(CodeInvalidName, "%s name is missing; a name is %s", kind, nameRule)
	}
	return badRequest(CodeInvalidName, "%s name is not valid; a name is %s", kind, nameRule)
}

const envRule = "a letter or '_' then up to 127 letters, digits or '_'"

var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// reservedEnv are variables the sandbox runtime sets itself (proxy, CA
// bundle, loader and shell basics). Binding a secret there would either
// break the sandbox or let a stand-in replace the CA or proxy settings.
var reservedEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "SHELL": true, "PWD": true,
	"LD_PRELOAD": true, "LD_LIBRARY_PATH": true,
	"SSL_CERT_FILE": true, "NODE_EXTRA_CA_CERTS": true, "REQUESTS_CA_BUNDLE": true,
	"CURL_CA_BUNDLE": true, "GIT_SSL_CAINFO": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "http_proxy": true, "https_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
}

const reservedPrefix = "STANDIN_"

// validateEnvVar checks a binding's variable name. A well-formed name is
// echoed; a malformed one is not.
func validateEnvVar(env string) error {
	if !envRE.MatchString(env) {
		if env == "" {
			return badRequest(CodeInvalidEnvVar, "environment variable name is missing; it must be %s", envRule)
		}
		return badRequest(CodeInvalidEnvVar, "environment variable name is not valid; it must be %s", envRule)
	}
	if looksLikeCredential(env) {
		return badRequest(CodeInvalidEnvVar,
			"environment variable name looks like a credential (a key pasted in the wrong place?); use a name such as ANTHROPIC_API_KEY")
	}
	if reservedEnv[env] || strings.HasPrefix(env, reservedPrefix) {
		return badRequest(CodeInvalidEnvVar,
			"environment variable %q is reserved: the sandbox sets it (PATH, HOME, proxy and CA bundle variables, anything starting %s); pick another name",
			env, reservedPrefix)
	}
	return nil
}

// validateValue checks a secret value. Messages describe the problem and
// its position, never the content.
func validateValue(v []byte) error {
	switch {
	case len(v) == 0:
		return badRequest(CodeInvalidValue, "value is empty; pass the credential in \"value\"")
	case len(v) > maxValue:
		return newError(http.StatusRequestEntityTooLarge, CodeValueTooLarge,
			"value is %d bytes; the limit is %d", len(v), maxValue)
	case !utf8.Valid(v):
		return badRequest(CodeInvalidValue, "value is not valid UTF-8 text")
	}
	if i := bytes.IndexAny(v, "\r\n"); i >= 0 {
		return badRequest(CodeInvalidValue,
			"value contains a line break at byte %d; that is almost always a paste error (a trailing newline from echo or a file): remove it", i)
	}
	if i := bytes.IndexFunc(v, unicode.IsControl); i >= 0 {
		return badRequest(CodeInvalidValue, "value contains a control character at byte %d (NUL, tab, escape, ...); credentials are printable text", i)
	}
	first, _ := utf8.DecodeRune(v)
	last, _ := utf8.DecodeLastRune(v)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return badRequest(CodeInvalidValue, "value starts or ends with whitespace; that is almost always a paste error: trim it")
	}
	return nil
}

// validateDescription keeps descriptions one printable line and refuses one
// that contains the value: it is shown in listings.
func validateDescription(desc string, value []byte) error {
	switch {
	case len(desc) > maxDescription:
		return badRequest(CodeInvalidField, "description is %d bytes; the limit is %d", len(desc), maxDescription)
	case !utf8.ValidString(desc):
		return badRequest(CodeInvalidField, "description is not valid UTF-8 text")
	case strings.IndexFunc(desc, unicode.IsControl) >= 0:
		return badRequest(CodeInvalidField, "description must be one line of printable text")
	case containsValue(desc, value):
		return badRequest(CodeInvalidField, "description contains the secret value; descriptions are shown in listings: remove it")
	}
	for _, word := range strings.Fields(desc) {
		if looksLikeCredential(word) {
			return badRequest(CodeInvalidField, "description holds something that looks like a credential; descriptions are shown in listings: remove it")
		}
	}
	return nil
}

// containsValue reports whether s contains value. Values under six bytes
// are not real credentials and would match ordinary text.
func containsValue(s string, value []byte) bool {
	return len(value) >= minRedactLen && strings.Contains(s, string(value))
}

// validateHosts wraps catalog.ValidateHosts. A host list is stored and
// shown in clear, so no field may hold the value or look like a
// credential. The catalog's reasons may quote the entry; each string of it
// is replaced by its position.
func validateHosts(hosts []client.HostAuth, value []byte) error {
	labels := make(map[string]string)
	for i, h := range hosts {
		for _, f := range []struct{ name, v string }{
			{"host", h.Host}, {"auth.type", h.Auth.Type}, {"auth.header", h.Auth.Header},
			{"auth.template", h.Auth.Template}, {"auth.username", h.Auth.Username},
			{"auth.secretIn", h.Auth.SecretIn}, {"auth.param", h.Auth.Param},
		} {
			if f.v == "" {
				continue
			}
			label := fmt.Sprintf("hosts[%d].%s", i, f.name)
			if containsValue(f.v, value) {
				return badRequest(CodeInvalidHost, "%s contains the secret value; it belongs in \"value\" only", label)
			}
			for _, word := range strings.Fields(f.v) {
				if looksLikeCredential(word) {
					return badRequest(CodeInvalidHost, "%s looks like a credential; it belongs in \"value\" only", label)
				}
			}
			labels[f.v] = "<" + label + ">"
		}
	}
	err := catalog.ValidateHosts(hosts)
	var he *catalog.HostError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return badRequest(CodeInvalidHost, "hosts[%d]: %s", he.Index, redact(he.Reason, labels))
	}
	return badRequest(CodeInvalidHost, "%s", redact(strings.TrimPrefix(err.Error(), catalog.ErrInvalidHosts.Error()+": "), labels))
}

// validateNetwork checks rules entry by entry, so the error can name the
// entry by position (policy's message, with the entry redacted).
func validateNetwork(n client.NetworkRules) error {
	if n.Inspect != "" && n.Inspect != "all" {
		return badRequest(CodeInvalidRule, `inspect must be "" (terminate TLS only where a secret is bound) or "all"`)
	}
	labels := make(map[string]string)
	for _, list := range []struct {
		name    string
		entries []string
	}{{"allowOut", n.AllowOut}, {"denyOut", n.DenyOut}} {
		if len(list.entries) > maxRules {
			return badRequest(CodeInvalidRule, "%s has %d entries; the limit is %d", list.name, len(list.entries), maxRules)
		}
		for i, e := range list.entries {
			label := fmt.Sprintf("%s[%d]", list.name, i)
			if _, err := policy.ParseRule(e); err != nil {
				return badRequest(CodeInvalidRule, "%s is not a valid rule: %s", label,
					redact(err.Error(), map[string]string{e: "<" + label + ">"}))
			}
			if looksLikeCredential(e) {
				return badRequest(CodeInvalidRule, "%s looks like a credential, not a host name or CIDR", label)
			}
			labels[e] = "<" + label + ">"
		}
	}
	if _, err := policy.ParseRules(n.AllowOut, n.DenyOut); err != nil {
		return badRequest(CodeInvalidRule, "%s", redact(err.Error(), labels))
	}
	return nil
}

// normalizeNetwork makes nil lists empty so responses always carry arrays.
func normalizeNetwork(n client.NetworkRules) client.NetworkRules {
	if n.AllowOut == nil {
		n.AllowOut = []string{}
	}
	if n.DenyOut == nil {
		n.DenyOut = []string{}
	}
	return n
}
