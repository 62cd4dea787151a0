package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnquoteJSON(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"abc"`, "abc", true},
		{`""`, "", true},
		{`"a\"b\\c\/d"`, `a"b\c/d`, true},
		{`"\b\f\n\r\t"`, "\b\f\n\r\t", true},
		{`"\u00e9\u20AC"`, "é€", true},
		{`"\ud83d\ude00"`, "😀", true},
		{`"\ud83dx"`, "\uFFFDx", true},
		{`"\ude00\ud83d"`, "\uFFFD\uFFFD", true},
		{`"\ud83d\u0041"`, "\uFFFDA", true},
		{`"é"`, "é", true},
		{`abc`, "", false},
		{`"abc`, "", false},
		{`123`, "", false},
		{`null`, "", false},
		{`"\x"`, "", false},
		{`"\u12"`, "", false},
		{`"a` + "\n" + `b"`, "", false},
	}
	for _, tt := range tests {
		got, ok := unquoteJSON([]byte(tt.in))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("unquoteJSON(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzUnquoteJSON checks unquoteJSON agrees with encoding/json on every
// string literal encoding/json accepts (for valid UTF-8 input, since
// encoding/json rewrites invalid bytes where we keep them for the caller
// to refuse).
func FuzzUnquoteJSON(f *testing.F) {
	for _, s := range []string{`"abc"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\u0000"`, `"a\/b"`, `"é"`, `"\uDFFF\uD800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want string
		if err := json.Unmarshal(data, &want); err != nil {
			return
		}
		// The decoder hands UnmarshalJSON the literal without the
		// whitespace around it.
		data = bytes.Trim(data, " \t\r\n")
		got, ok := unquoteJSON(data)
		if !ok {
			t.Fatalf("unquoteJSON(%q) failed; encoding/json gives %q", data, want)
		}
		if utf8.Valid(data) && string(got) != want {
			t.Fatalf("unquoteJSON(%q) = %q, encoding/json gives %q", data, got, want)
		}
	})
}

func TestSecretBytesNeverPrints(t *testing.T) {
	v := secretBytes(githubCanary)
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %s %+v %#v", v, v, v, v)} {
		if s == "" || strings.Contains(s, "LEAKCANARY") {
			t.Errorf("formatting secretBytes gives %q", s)
		}
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		name  string
		value string
		code  string
	}{
		{"ok", "abc-DEF_123.456", ""},
		{"inner space", "abc def", ""},
		{"unicode", "ключ", ""},
		{"empty", "", CodeInvalidValue},
		{"max", strings.Repeat("a", maxValue), ""},
		{"too large", strings.Repeat("a", maxValue+1), CodeValueTooLarge},
		{"trailing newline", "abc\n", CodeInvalidValue},
		{"inner CR", "ab\rc", CodeInvalidValue},
		{"NUL", "ab\x00c", CodeInvalidValue},
		{"DEL", "ab\x7fc", CodeInvalidValue},
		{"C1 control", "ab\u0085c", CodeInvalidValue},
		{"leading space", " abc", CodeInvalidValue},
		{"trailing ideographic space", "abc\u3000", CodeInvalidValue},
		{"invalid utf8", "ab\xffc", CodeInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateValue([]byte(tt.value))
			code := ""
			if e, ok := err.(*Error); ok {
				code = e.Code
			} else if err != nil {
				t.Fatalf("validateValue: %T %v, want *Error", err, err)
			}
			if code != tt.code {
				t.Errorf("validateValue(%d bytes) code = %q, want %q (err %v)", len(tt.value), code, tt.code, err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		msg    string
		inputs map[string]string
		want   string
	}{
		{`host "sk-secret-123" is not valid`, map[string]string{"sk-secret-123": "<hosts[0].host>"}, `host <hosts[0].host> is not valid`},
		{`bad sk-secret-123 here`, map[string]string{"sk-secret-123": "<x>"}, `bad <x> here`},
		{`"abcdefgh" and "abcdefghij"`, map[string]string{"abcdefgh": "<a>", "abcdefghij": "<b>"}, `<a> and <b>`},
		{`type "query" needs param`, map[string]string{"query": "<t>"}, `type "query" needs param`},
	}
	for _, tt := range tests {
		if got := redact(tt.msg, tt.inputs); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestValidateEnvVar(t *testing.T) {
	tests := []struct {
		env string
		ok  bool
	}{
		{"OPENAI_API_KEY", true}, {"_x", true}, {"a1", true}, {strings.Repeat("A", 128), true},
		{strings.Repeat("A", 129), false}, {"", false}, {"1A", false}, {"A-B", false}, {"A B", false},
		{"PATH", false}, {"HOME", false}, {"USER", false}, {"SHELL", false}, {"PWD", false},
		{"LD_PRELOAD", false}, {"LD_LIBRARY_PATH", false}, {"SSL_CERT_FILE", false},
		{"NODE_EXTRA_CA_CERTS", false}, {"REQUESTS_CA_BUNDLE", false}, {"CURL_CA_BUNDLE", false},
		{"GIT_SSL_CAINFO", false}, {"HTTP_PROXY", false}, {"HTTPS_PROXY", false}, {"http_proxy", false},
		{"https_proxy", false}, {"NO_PROXY", false}, {"no_proxy", false}, {"STANDIN_", false},
		{"STANDIN_TOKEN", false}, {"standin_x", true}, {"Path", true},
	}
	for _, tt := range tests {
		if err := validateEnvVar(tt.env); (err == nil) != tt.ok {
			t.Errorf("validateEnvVar(%q) = %v, want ok %v", tt.env, err, tt.ok)
		}
	}
}

func TestLooksLikeCredential(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"OPENAI_API_KEY", false},
		{"AWS_SECRET_ACCESS_KEY", false},
		{"anthropic-prod", false},
		{"myServiceApiKey2024Production", false},
		{"0123456789abcdef0123456789abcdef01234567", false}, // hex: no upper case
		{"api.example.com", false},
		{"token {value}", false},
		{"X_Y_Z_1234567890123456", false},
		{"ghp_" + strings.Repeat("aB3", 12), true},     // GitHub format
		{githubCanary, true},                           // GitHub format
		{anthropicCanary, true},                        // Anthropic format
		{"cust_Zq9xY8wV7uT6sR5qP4oN3mL2", true},        // random-looking run
		{"Zq9xY8wV7uT6sR5qP4oN3mL2.example.com", true}, // inside a host
		{"Zq9xY8wV7uT6sR5", false},                     // too short to tell
		{"bkua_" + strings.Repeat("a1", 20), true},     // Buildkite format, all lower case
	}
	for _, tt := range tests {
		if got := looksLikeCredential(tt.s); got != tt.want {
			t.Errorf("looksLikeCredential(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
