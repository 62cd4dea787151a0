package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/standin/standin/client"
)

const slotStandIn = "ghp_St4ndInZyXwVuTsRqPoNmLkJiHgFeDcBa"

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// slotRequest builds a GET request for target with headers given as
// name, value pairs, kept exactly as written (repeats allowed) and a body.
func slotRequest(tb testing.TB, target string, kv ...string) *http.Request {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader("body "+slotStandIn))
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header[kv[i]] = append(r.Header[kv[i]], kv[i+1])
	}
	return r
}

var (
	slotBearer   = client.AuthSlot{Type: client.SlotBearer}
	slotXBearer  = client.AuthSlot{Type: client.SlotBearer, Header: "X-Auth"}
	slotAPIKey   = client.AuthSlot{Type: client.SlotHeader, Header: "x-api-key"}
	slotTemplate = client.AuthSlot{Type: client.SlotHeader, Header: "Authorization", Template: "token {value}"}
	slotSuffix   = client.AuthSlot{Type: client.SlotHeader, Header: "Cookie", Template: "session={value}; lang=en"}
	slotBasic    = client.AuthSlot{Type: client.SlotBasic, Username: "__token__"}
	slotBasicU   = client.AuthSlot{Type: client.SlotBasic, SecretIn: "username"}
	slotQuery    = client.AuthSlot{Type: client.SlotQuery, Param: "api_key"}
)

func TestTokenIn(t *testing.T) {
	tests := []struct {
		name     string
		slot     client.AuthSlot
		target   string
		headers  []string
		want     string
		ok       bool
		multiple bool
	}{
		{"bearer", slotBearer, "/", []string{"Authorization", "Bearer " + slotStandIn}, slotStandIn, true, false},
		{"bearer lower scheme", slotBearer, "/", []string{"Authorization", "bearer " + slotStandIn}, slotStandIn, true, false},
		{"bearer upper scheme", slotBearer, "/", []string{"Authorization", "BEARER " + slotStandIn}, slotStandIn, true, false},
		{"bearer two spaces kept", slotBearer, "/", []string{"Authorization", "Bearer  x"}, " x", true, false},
		{"bearer empty", slotBearer, "/", []string{"Authorization", "Bearer "}, "", false, false},
		{"bearer no space", slotBearer, "/", []string{"Authorization", "Bearer" + slotStandIn}, "", false, false},
		{"bearer other scheme", slotBearer, "/", []string{"Authorization", "Token " + slotStandIn}, "", false, false},
		{"bearer custom header", slotXBearer, "/", []string{"X-Auth", "Bearer " + slotStandIn}, slotStandIn, true, false},
		{"bearer custom header ignores authorization", slotXBearer, "/", []string{"Authorization", "Bearer " + slotStandIn}, "", false, false},
		{"bearer non-canonical key", slotBearer, "/", []string{"authorization", "Bearer " + slotStandIn}, slotStandIn, true, false},
		{"bearer unicode fold", slotBearer, "/", []string{"Authorization", "Bearer " + slotStandIn, "X-Api-\u212Aey", "x"}, slotStandIn, true, false},
		{"header unicode fold", slotAPIKey, "/", []string{"X-Api-\u212Aey", slotStandIn}, "", false, false},
		{"bearer twice", slotBearer, "/", []string{"Authorization", "Bearer a", "Authorization", "Bearer b"}, "", false, true},
		{"bearer twice across keys", slotBearer, "/", []string{"Authorization", "Bearer a", "authorization", "Bearer a"}, "", false, true},
		{"bearer in other header", slotBearer, "/", []string{"X-Token", "Bearer " + slotStandIn}, "", false, false},
		{"bearer in query", slotBearer, "/?access_token=" + slotStandIn, nil, "", false, false},
		{"header whole value", slotAPIKey, "/", []string{"X-Api-Key", slotStandIn}, slotStandIn, true, false},
		{"header twice", slotAPIKey, "/", []string{"X-Api-Key", slotStandIn, "X-Api-Key", slotStandIn}, "", false, true},
		{"header absent", slotAPIKey, "/", []string{"X-Other-Key", slotStandIn}, "", false, false},
		{"template", slotTemplate, "/", []string{"Authorization", "token " + slotStandIn}, slotStandIn, true, false},
		{"template mismatch", slotTemplate, "/", []string{"Authorization", "Bearer " + slotStandIn}, "", false, false},
		{"template case differs", slotTemplate, "/", []string{"Authorization", "Token " + slotStandIn}, "", false, false},
		{"template empty value", slotTemplate, "/", []string{"Authorization", "token "}, "", false, false},
		{"template suffix", slotSuffix, "/", []string{"Cookie", "session=" + slotStandIn + "; lang=en"}, slotStandIn, true, false},
		{"template suffix mismatch", slotSuffix, "/", []string{"Cookie", "session=" + slotStandIn + "; lang=fr"}, "", false, false},
		{"template overlapping short", slotSuffix, "/", []string{"Cookie", "session=; lang=e"}, "", false, false},
		{"header slot without name", client.AuthSlot{Type: client.SlotHeader}, "/", []string{"Authorization", slotStandIn}, "", false, false},
		{"basic password", slotBasic, "/", []string{"Authorization", "Basic " + b64s("__token__:"+slotStandIn)}, slotStandIn, true, false},
		{"basic other user", slotBasic, "/", []string{"Authorization", "Basic " + b64s("me:"+slotStandIn)}, slotStandIn, true, false},
		{"basic colon in password", slotBasic, "/", []string{"Authorization", "Basic " + b64s("me:a:b")}, "a:b", true, false},
		{"basic lower scheme", slotBasic, "/", []string{"Authorization", "basic " + b64s("me:"+slotStandIn)}, slotStandIn, true, false},
		{"basic unpadded", slotBasic, "/", []string{"Authorization", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("me:x"))}, "x", true, false},
		{"basic username", slotBasicU, "/", []string{"Authorization", "Basic " + b64s(slotStandIn+":")}, slotStandIn, true, false},
		{"basic no colon", slotBasic, "/", []string{"Authorization", "Basic " + b64s(slotStandIn)}, "", false, false},
		{"basic empty password", slotBasic, "/", []string{"Authorization", "Basic " + b64s("me:")}, "", false, false},
		{"basic bad base64", slotBasic, "/", []string{"Authorization", "Basic !!!!"}, "", false, false},
		{"basic bearer", slotBasic, "/", []string{"Authorization", "Bearer " + slotStandIn}, "", false, false},
		{"query", slotQuery, "/v1?a=1&api_key=" + slotStandIn + "&b=2", nil, slotStandIn, true, false},
		{"query escaped", slotQuery, "/v1?api%5Fkey=a%2Bb+c", nil, "a+b c", true, false},
		{"query twice", slotQuery, "/v1?api_key=a&api_key=b", nil, "", false, true},
		{"query absent", slotQuery, "/v1?apikey=" + slotStandIn, nil, "", false, false},
		{"query empty", slotQuery, "/v1?api_key=&x=1", nil, "", false, false},
		{"query no value", slotQuery, "/v1?api_key", nil, "", false, false},
		{"query bad escape", slotQuery, "/v1?api_key=%zz", nil, "", false, false},
		{"query semicolon", slotQuery, "/v1?x=1;api_key=" + slotStandIn, nil, "", false, false},
		{"query in header", slotQuery, "/v1", []string{"Api_key", slotStandIn}, "", false, false},
		{"unknown type", client.AuthSlot{Type: "cookie"}, "/", []string{"Authorization", "Bearer x"}, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := slotRequest(t, tt.target, tt.headers...)
			got, ok, multiple := TokenIn(r, tt.slot)
			if got != tt.want || ok != tt.ok || multiple != tt.multiple {
				t.Errorf("TokenIn(%v) = %q, %v, %v; want %q, %v, %v", tt.headers, got, ok, multiple, tt.want, tt.ok, tt.multiple)
			}
			err := SetToken(r, tt.slot, []byte("new-value"))
			switch {
			case tt.multiple && !errors.Is(err, ErrSlotMultiple):
				t.Errorf("SetToken = %v, want %v", err, ErrSlotMultiple)
			case !tt.ok && !tt.multiple && !errors.Is(err, ErrSlotEmpty):
				t.Errorf("SetToken = %v, want %v", err, ErrSlotEmpty)
			case tt.ok && err != nil:
				t.Errorf("SetToken = %v, want nil", err)
			}
		})
	}
}

// slotSnapshot is everything of a request SetToken must leave alone, but the
// slot's own header or query.
type slotSnapshot struct {
	Method, Path, RawPath, Host, RequestURI string
	RawQuery                                string
	Header                                  http.Header
	Body                                    string
}

func slotSnap(tb testing.TB, r *http.Request) slotSnapshot {
	tb.Helper()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		tb.Fatal(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return slotSnapshot{r.Method, r.URL.Path, r.URL.RawPath, r.Host, r.RequestURI, r.URL.RawQuery, r.Header.Clone(), string(body)}
}

func TestSetToken(t *testing.T) {
	const real = "ghp_R3alV4lueAbCdEfGhIjKlMnOpQrStUvWx"
	others := []string{
		"Content-Type", "application/json",
		"X-Echo", "Bearer " + slotStandIn, // a stand-in elsewhere stays a stand-in
		"X-Session", "a=b",
		"Accept", "*/*",
	}
	tests := []struct {
		name     string
		slot     client.AuthSlot
		target   string
		header   string // the slot's header, if any
		in, want string // its value, before and after
		wantRaw  string // the raw query after, for query slots
	}{
		{name: "bearer", slot: slotBearer, target: "/p", header: "Authorization", in: "Bearer " + slotStandIn, want: "Bearer " + real},
		{name: "bearer scheme kept", slot: slotBearer, target: "/p", header: "Authorization", in: "bEaReR " + slotStandIn, want: "bEaReR " + real},
		{name: "bearer custom", slot: slotXBearer, target: "/p", header: "X-Auth", in: "Bearer " + slotStandIn, want: "Bearer " + real},
		{name: "header", slot: slotAPIKey, target: "/p", header: "X-Api-Key", in: slotStandIn, want: real},
		{name: "template", slot: slotTemplate, target: "/p", header: "Authorization", in: "token " + slotStandIn, want: "token " + real},
		{name: "template suffix", slot: slotSuffix, target: "/p", header: "Cookie", in: "session=" + slotStandIn + "; lang=en", want: "session=" + real + "; lang=en"},
		{name: "basic", slot: slotBasic, target: "/p", header: "Authorization", in: "Basic " + b64s("__token__:"+slotStandIn), want: "Basic " + b64s("__token__:"+real)},
		{name: "basic user kept", slot: slotBasic, target: "/p", header: "Authorization", in: "Basic " + b64s("x-access-token:"+slotStandIn), want: "Basic " + b64s("x-access-token:"+real)},
		{name: "basic unpadded", slot: slotBasic, target: "/p", header: "Authorization", in: "Basic " + base64.RawStdEncoding.EncodeToString([]byte("me:"+slotStandIn+"x")), want: "Basic " + base64.RawStdEncoding.EncodeToString([]byte("me:"+real))},
		{name: "basic username", slot: slotBasicU, target: "/p", header: "Authorization", in: "Basic " + b64s(slotStandIn+":"), want: "Basic " + b64s(real+":")},
		{name: "basic username with password", slot: slotBasicU, target: "/p", header: "Authorization", in: "Basic " + b64s(slotStandIn+":pw:x"), want: "Basic " + b64s(real+":pw:x")},
		{name: "query", slot: slotQuery, target: "/p/a%2Fb?z=%41&api_key=" + slotStandIn + "&a=1;b&&=x&b=%zz", wantRaw: "z=%41&api_key=" + real + "&a=1;b&&=x&b=%zz"},
		{name: "query escaped name kept", slot: slotQuery, target: "/p?api%5fkey=" + slotStandIn + "&x", wantRaw: "api%5fkey=" + real + "&x"},
		{name: "query value escaped", slot: client.AuthSlot{Type: client.SlotQuery, Param: "k"}, target: "/?k=" + slotStandIn, wantRaw: "k=" + url.QueryEscape(real+" /+&=")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := others
			if tt.header != "" {
				kv = append(append([]string(nil), others...), tt.header, tt.in)
			}
			r := slotRequest(t, tt.target, kv...)
			before := slotSnap(t, r)
			if _, ok, _ := TokenIn(r, tt.slot); !ok {
				t.Fatalf("TokenIn found no token in %v", kv)
			}
			value := real
			if tt.name == "query value escaped" {
				value = real + " /+&="
			}
			if err := SetToken(r, tt.slot, []byte(value)); err != nil {
				t.Fatalf("SetToken: %v", err)
			}
			if got, ok, _ := TokenIn(r, tt.slot); got != value || !ok {
				t.Errorf("TokenIn after SetToken = %q, %v; want %q, true", got, ok, value)
			}
			want := before
			if tt.header != "" {
				want.Header = before.Header.Clone()
				want.Header[tt.header] = []string{tt.want}
			} else {
				want.RawQuery = tt.wantRaw
			}
			if diff := cmp.Diff(want, slotSnap(t, r)); diff != "" {
				t.Errorf("request after SetToken: (-want +got)\n%s", diff)
			}
		})
	}
}

func TestSetTokenRejects(t *testing.T) {
	tests := []struct {
		name    string
		slot    client.AuthSlot
		headers []string
		value   string
		want    error
	}{
		{"newline in bearer", slotBearer, []string{"Authorization", "Bearer x"}, "a\r\nX-Evil: 1", ErrSlotValue},
		{"nul in header", slotAPIKey, []string{"X-Api-Key", "x"}, "a\x00b", ErrSlotValue},
		{"empty value", slotAPIKey, []string{"X-Api-Key", "x"}, "", ErrSlotValue},
		{"colon in basic user", slotBasicU, []string{"Authorization", "Basic " + b64s("u:")}, "a:b", ErrSlotValue},
		{"no token", slotBearer, []string{"X-Other", "Bearer x"}, "v", ErrSlotEmpty},
		{"two tokens", slotBearer, []string{"Authorization", "Bearer x", "Authorization", "Bearer y"}, "v", ErrSlotMultiple},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := slotRequest(t, "/", tt.headers...)
			before := slotSnap(t, r)
			err := SetToken(r, tt.slot, []byte(tt.value))
			if !errors.Is(err, tt.want) {
				t.Fatalf("SetToken(%q) = %v, want %v", tt.value, err, tt.want)
			}
			if tt.value != "" && strings.Contains(err.Error(), tt.value) {
				t.Errorf("SetToken error %q holds the value", err)
			}
			if diff := cmp.Diff(before, slotSnap(t, r)); diff != "" {
				t.Errorf("request changed by failed SetToken: (-want +got)\n%s", diff)
			}
		})
	}
}

// FuzzSlots runs TokenIn and SetToken on random header values and raw
// queries for every slot type: no panic, and after a successful SetToken,
// TokenIn returns the new value and nothing else of the request changed.
func FuzzSlots(f *testing.F) {
	f.Add("Bearer abc", "a=1&api_key=xyz", "new")
	f.Add("Basic "+b64s("user:pass"), "api_key=%41%zz", "n:e w")
	f.Add("token abc", "api_key=a&api_key=b", "\x00")
	f.Add("session=abc; lang=en", ";;&&==", "v")
	f.Fuzz(func(t *testing.T, hv, rawQuery, value string) {
		slots := []client.AuthSlot{slotBearer, slotXBearer, slotAPIKey, slotTemplate, slotSuffix, slotBasic, slotBasicU, slotQuery}
		for _, slot := range slots {
			r := &http.Request{
				Method: http.MethodGet,
				URL:    &url.URL{Path: "/p", RawQuery: rawQuery},
				Header: http.Header{
					"Authorization": {hv},
					"X-Auth":        {hv},
					"X-Api-Key":     {hv},
					"Cookie":        {hv},
					"X-Other":       {hv},
				},
			}
			before := r.Header.Clone()
			tok, ok, multiple := TokenIn(r, slot)
			if ok && (tok == "" || multiple) {
				t.Fatalf("TokenIn(%v) = %q, %v, %v", slot, tok, ok, multiple)
			}
			err := SetToken(r, slot, []byte(value))
			if !ok {
				if err == nil {
					t.Fatalf("SetToken(%v) = nil on a request with no token", slot)
				}
				continue
			}
			if err != nil {
				if !errors.Is(err, ErrSlotValue) {
					t.Fatalf("SetToken(%v, %q) = %v", slot, value, err)
				}
				continue
			}
			if got, ok, _ := TokenIn(r, slot); got != value || !ok {
				t.Fatalf("%v: TokenIn after SetToken(%q) = %q, %v", slot, value, got, ok)
			}
			// Only the slot's own header or query may change.
			name := slot.Header
			if name == "" && slot.Type != client.SlotQuery {
				name = "Authorization"
			}
			for k := range before {
				if k != http.CanonicalHeaderKey(name) && r.Header.Get(k) != before.Get(k) {
					t.Fatalf("%v: SetToken changed header %q", slot, k)
				}
			}
			if slot.Type != client.SlotQuery && r.URL.RawQuery != rawQuery {
				t.Fatalf("%v: SetToken changed the query", slot)
			}
		}
	})
}
