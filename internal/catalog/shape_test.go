package catalog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seeded returns a deterministic random source for name, so failures
// reproduce.
func seeded(name string) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256([]byte(name)))
}

// referenceRegexes maps "provider/format" to the reference example_regex.
func referenceRegexes(tb testing.TB) map[string]string {
	tb.Helper()
	var ref []struct {
		ID      string `json:"id"`
		Formats []struct {
			Name  string `json:"name"`
			Regex string `json:"example_regex"`
		} `json:"formats"`
	}
	if err := json.Unmarshal(readReference(tb), &ref); err != nil {
		tb.Fatalf("parse reference: %v", err)
	}
	out := map[string]string{}
	for _, p := range ref {
		for _, f := range p.Formats {
			out[p.ID+"/"+f.Name] = f.Regex
		}
	}
	return out
}

// formatsNotInReference are formats the catalog adds (refconv.extraFormats).
var formatsNotInReference = map[string]bool{
	"gitlab/personal access token (routable, versioned)": true,
}

// TestMintEveryFormat mints 1,000 stand-ins of every format: each matches
// the reference regex, passes Valid (checksum), has the format's typical
// length, and none repeats or equals a stored value.
func TestMintEveryFormat(t *testing.T) {
	refs := referenceRegexes(t)
	for _, p := range Providers() {
		for _, f := range p.Formats {
			key := p.ID + "/" + f.Name
			t.Run(key, func(t *testing.T) {
				expr, ok := refs[key]
				switch {
				case ok && expr != f.Regex:
					t.Fatalf("catalog regex %q differs from the reference's %q", f.Regex, expr)
				case !ok && !formatsNotInReference[key]:
					t.Fatalf("format not in the reference")
				case !ok:
					expr = f.Regex
				}
				re := regexp.MustCompile(expr)
				s := Shape{Provider: p.ID, Format: f.Name}
				r := seeded(key)
				stored, err := s.Mint(r) // stands for the real value
				if err != nil {
					t.Fatalf("Mint: %v", err)
				}
				seen := map[string]bool{stored: true}
				for i := range 1000 {
					tok, err := s.Mint(r)
					if err != nil {
						t.Fatalf("Mint #%d: %v", i, err)
					}
					if !re.MatchString(tok) {
						t.Fatalf("Mint #%d = %q, does not match %q", i, tok, expr)
					}
					if !s.Valid(tok) {
						t.Fatalf("Valid(%q) = false for a minted stand-in", tok)
					}
					if len(tok) != f.Length {
						t.Fatalf("len(Mint #%d) = %d, want the typical length %d", i, len(tok), f.Length)
					}
					if seen[tok] {
						t.Fatalf("Mint #%d = %q repeats a stand-in or the stored value", i, tok)
					}
					seen[tok] = true
				}
			})
		}
	}
}

// TestMintLengths asks formats that allow several lengths for each of a
// spread of lengths.
func TestMintLengths(t *testing.T) {
	for _, p := range Providers() {
		for _, f := range p.Formats {
			plan, err := planFor(f.Regex)
			if err != nil {
				t.Fatalf("%s/%s: %v", p.ID, f.Name, err)
			}
			if !plan.allowsSeveralLengths() {
				continue
			}
			key := p.ID + "/" + f.Name
			t.Run(key, func(t *testing.T) {
				var lengths []int
				for l := range plan.root.lens.members() {
					lengths = append(lengths, l)
				}
				// The shortest, the longest (up to 600) and some between.
				r := rand.New(seeded(key))
				want := []int{lengths[0], lengths[len(lengths)-1]}
				for range 20 {
					want = append(want, lengths[r.IntN(len(lengths))])
				}
				sc := schemes[f.Checksum]
				for _, l := range want {
					if l > 600 {
						l = 600
					}
					s := Shape{Provider: p.ID, Format: f.Name, Length: l}
					tok, err := s.Mint(seeded(key + string(rune(l))))
					if err != nil {
						t.Fatalf("Mint(length %d): %v", l, err)
					}
					if !s.Valid(tok) {
						t.Errorf("Mint(length %d) = %q, not Valid", l, tok)
					}
					if sc.mint == nil {
						if len(tok) != l {
							t.Errorf("len(Mint(length %d)) = %d", l, len(tok))
						}
						continue
					}
					// Constructed tokens (macaroons, routable tokens) exist
					// only at some lengths, and the nearest is taken; a
					// length a token has is always met exactly, so a real
					// token's stand-in has its length.
					s.Length = len(tok)
					again, err := s.Mint(seeded(key + "again"))
					if err != nil || len(again) != len(tok) || !s.Valid(again) {
						t.Errorf("Mint(length %d) = %q, %v; want a valid token of that length", len(tok), again, err)
					}
				}
			})
		}
	}
}

func TestShapeFor(t *testing.T) {
	github, _ := Lookup("github")
	stripe, _ := Lookup("stripe")
	openai, _ := Lookup("openai")
	tests := []struct {
		name  string
		p     *Provider
		value string
		want  Shape
	}{
		{
			name:  "fine-grained PAT",
			p:     &github,
			value: "github_pat_" + strings.Repeat("A", 22) + "_" + strings.Repeat("b", 59),
			want:  Shape{Provider: "github", Format: "fine-grained personal access token"},
		},
		{
			name:  "classic PAT",
			p:     &github,
			value: "ghp_" + strings.Repeat("x", 36),
			want:  Shape{Provider: "github", Format: "classic personal access token"},
		},
		{
			name:  "unknown value gets the main format",
			p:     &github,
			value: "not a github token",
			want:  Shape{Provider: "github", Format: "classic personal access token"},
		},
		{
			name:  "variable length keeps the value's length",
			p:     &stripe,
			value: "sk_live_" + strings.Repeat("a", 24),
			want:  Shape{Provider: "stripe", Format: "secret key (live)", Length: 32},
		},
		{
			name:  "old OpenAI project key",
			p:     &openai,
			value: "sk-proj-" + strings.Repeat("a", 58) + "T3BlbkFJ" + strings.Repeat("b", 58),
			want:  Shape{Provider: "openai", Format: "project API key", Length: 132},
		},
		{
			name:  "custom with vendor prefix",
			value: "acme_" + strings.Repeat("Zz9", 10),
			want:  Shape{Prefix: "acme_", Alphabet: AlphabetAlnum, Length: 35},
		},
		{
			name:  "custom hex",
			value: strings.Repeat("0f", 20),
			want:  Shape{Alphabet: AlphabetHex, Length: 40},
		},
		{
			name:  "short values get 16 characters",
			value: "1234",
			want:  Shape{Alphabet: AlphabetHex, Length: 16},
		},
		{
			name:  "UUID: first group is key material, not a prefix",
			value: "3f2a9c1e-4b7d-4c2a-9e1f-0a1b2c3d4e5f",
			want:  Shape{Alphabet: AlphabetBase64URL, Length: 36},
		},
		{
			name:  "mixed-case run is key material",
			value: "aK3xQ_" + strings.Repeat("b", 30),
			want:  Shape{Alphabet: AlphabetBase64URL, Length: 36},
		},
		{
			name:  "separator past 12 characters",
			value: "abcdefghijkl_" + strings.Repeat("b", 30),
			want:  Shape{Alphabet: AlphabetBase64URL, Length: 43},
		},
		{
			name:  "upper-case label with digits",
			value: "HRKU2-" + strings.Repeat("x", 30),
			want:  Shape{Prefix: "HRKU2-", Alphabet: AlphabetAlnum, Length: 36},
		},
		{
			name:  "other characters",
			value: "pass word:" + strings.Repeat("x", 20),
			want:  Shape{Alphabet: AlphabetToken, Length: 30},
		},
		{
			name:  "token alphabet",
			value: "abc.def+ghi/jkl=" + strings.Repeat("x", 20),
			want:  Shape{Alphabet: AlphabetToken, Length: 36},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ShapeFor(tt.p, []byte(tt.value))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("ShapeFor(%q) (-want +got):\n%s", tt.value, diff)
			}
			tok, err := got.Mint(seeded(tt.name))
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if !got.Valid(tok) || tok == tt.value {
				t.Errorf("Mint = %q: valid %v, want a valid stand-in unlike the value", tok, got.Valid(tok))
			}
			if tt.want.Length > 0 && len(tok) != tt.want.Length {
				t.Errorf("len(Mint) = %d, want %d", len(tok), tt.want.Length)
			}
		})
	}
}

// TestShapeJSON pins the stored form of shapes: bindings keep it for life.
func TestShapeJSON(t *testing.T) {
	tests := []struct {
		shape Shape
		json  string
	}{
		{Shape{Provider: "github", Format: "classic personal access token"}, `{"provider":"github","format":"classic personal access token"}`},
		{Shape{Provider: "stripe", Format: "secret key (live)", Length: 32}, `{"provider":"stripe","format":"secret key (live)","length":32}`},
		{Shape{Prefix: "sk-", Alphabet: AlphabetHex, Length: 40}, `{"length":40,"prefix":"sk-","alphabet":"0123456789abcdef"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.shape)
		if err != nil || string(b) != tt.json {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tt.shape, b, err, tt.json)
		}
		var back Shape
		if err := json.Unmarshal([]byte(tt.json), &back); err != nil || back != tt.shape {
			t.Errorf("json.Unmarshal(%s) = %+v, %v; want %+v", tt.json, back, err, tt.shape)
		}
	}
}

func TestFormatName(t *testing.T) {
	tests := []struct {
		shape Shape
		want  string
	}{
		{Shape{Provider: "github", Format: "classic personal access token"}, "classic personal access token"},
		{Shape{Provider: "github"}, "classic personal access token"},
		{Shape{Prefix: "x-"}, "custom"},
		{Shape{Provider: "gone", Format: "old"}, "old"},
	}
	for _, tt := range tests {
		if got := tt.shape.FormatName(); got != tt.want {
			t.Errorf("%+v.FormatName() = %q, want %q", tt.shape, got, tt.want)
		}
	}
}

func TestMintErrors(t *testing.T) {
	if _, err := (Shape{Provider: "nope"}).Mint(seeded("x")); err == nil {
		t.Errorf("Mint(unknown provider) error = nil")
	}
	if _, err := (Shape{Provider: "github", Format: "nope"}).Mint(seeded("x")); err == nil {
		t.Errorf("Mint(unknown format) error = nil")
	}
	if _, err := (Shape{Length: 1 << 20}).Mint(seeded("x")); err == nil {
		t.Errorf("Mint(1 MiB custom) error = nil")
	}
	// A reader that runs dry fails the mint rather than yielding a weak
	// token.
	errDry := errors.New("dry")
	for _, s := range []Shape{{Provider: "github"}, {Provider: "pypi"}, {Provider: "gitlab", Format: "personal access token (routable)"}, {Length: 40}} {
		if _, err := s.Mint(failingReader{errDry}); !errors.Is(err, errDry) {
			t.Errorf("%+v.Mint(failing reader) error = %v, want %v", s, err, errDry)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// Known-good values from outside this package.
func TestChecksumVectors(t *testing.T) {
	// CredSweeper's tests/filters/test_value_github_check.py: a 31-zero body
	// with checksum 4WZ4EQ passes its GitHub check.
	if got := githubChecksum(strings.Repeat("0", 31)); got != "4WZ4EQ" {
		t.Errorf("githubChecksum(31 zeros) = %q, want 4WZ4EQ", got)
	}
	// Python: zlib.crc32(b"0"*30) in base62.
	if got := githubChecksum(strings.Repeat("0", 30)); got != "2C8GjS" {
		t.Errorf("githubChecksum(30 zeros) = %q, want 2C8GjS", got)
	}
	tests := []struct {
		name   string
		scheme string
		prefix string
		token  string
	}{
		// Python: "%08x" % zlib.crc32(b"a"*40).
		{"cloudflare", "cloudflare-crc32-hex", "cfut_", "cfut_" + strings.Repeat("a", 40) + "c95b8a25"},
		// Python: "%08X" % zlib.crc32(prefix + "A"*171 + "=").
		{"atlassian", "atlassian-crc32-hex", "ATATT3xFfGF0", "ATATT3xFfGF0" + strings.Repeat("A", 171) + "=9F90C792"},
		// CredSweeper tests/filters/test_value_grafana_service_check.py.
		{"grafana", "grafana-crc32-le-hex", "glsa_", "glsa_DuMmY-T0K3N-f0R-tHe-Te5t-CRC32Ok_770c8cda"},
		// GitLab handbook, routable tokens design: the minimum example
		// (no prefix, routing "o:1") and the maximum (20-character prefix).
		{"gitlab min", "gitlab-glpat-crc32-base36", "", "bzoxd_Rb5_cHeWe1JH56wr2FCBA.0r1pum4t4"},
		{"gitlab max", "gitlab-glpat-crc32-base36", "++++++++++++++++++++", "++++++++++++++++++++YzozdzVlMTEyNjRzZ3NmCmc6M3c1ZTExMjY0c2dzZgpoOjN3NWUxMTI2NHNnc2YKajozdzVlMTEyNjRzZ3NmCms6M3c1ZTExMjY0c2dzZgpsOjN3NWUxMTI2NHNnc2YKbTozdzVlMTEyNjRzZ3NmCm86M3c1ZTExMjY0c2dzZgpwOjN3NWUxMTI2NHNnc2YKdTozdzVlMTEyNjRzZ3Nmw5bzMmayzK43Ugba9fl8T_I-nZqc5gxOGH2HsUF6-J7UesTG4lmc3PT2aoPyuiUndG5Ci5IMThAbaiNkUTR87KBB.8c1adh6iv"},
		// discord.py documentation's example token.
		{"discord", "discord-snowflake-base64", "", "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"},
	}
	for _, tt := range tests {
		f := &Format{Prefix: tt.prefix}
		if !schemes[tt.scheme].valid(f, tt.token) {
			t.Errorf("%s: %s valid(%q) = false, want true", tt.name, tt.scheme, tt.token)
		}
	}
	// The handbook's minimum example decodes to routing "o:1".
	payload, err := base64.RawURLEncoding.DecodeString("bzoxd_Rb5_cHeWe1JH56wr2FCBA")
	if err != nil || !strings.HasPrefix(string(payload), "o:1") || payload[len(payload)-1] != 16 {
		t.Errorf("handbook payload = %q, %v; want o:1 + 16 random bytes + 0x10", payload, err)
	}
}

// TestChecksumRejectsOneCharChange changes each character of a stand-in
// in turn: CRC32 catches every single-character change.
func TestChecksumRejectsOneCharChange(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-.="
	for _, p := range Providers() {
		for _, f := range p.Formats {
			// Discord and PyPI carry structure, not a checksum over all.
			if !strings.Contains(f.Checksum, "crc32") {
				continue
			}
			s := Shape{Provider: p.ID, Format: f.Name}
			tok, err := s.Mint(seeded(f.Name))
			if err != nil {
				t.Fatal(err)
			}
			for i := range len(tok) {
				for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, tok[i])+1)%len(alphabet)], alphabet[(strings.IndexByte(alphabet, tok[i])+7)%len(alphabet)]} {
					changed := tok[:i] + string(c) + tok[i+1:]
					if s.Valid(changed) {
						t.Errorf("%s/%s: Valid(%q) = true after changing position %d of %q", p.ID, f.Name, changed, i, tok)
					}
				}
			}
		}
	}
}

func TestPyPIMacaroon(t *testing.T) {
	// Real PyPI tokens start so: location pypi.org, then a 36-byte
	// (UUID) identifier.
	b := buildMacaroon("pypi.org", "00000000-0000-4000-8000-000000000000", pypiUserCaveat, make([]byte, 32))
	if tok := "pypi-" + base64.RawURLEncoding.EncodeToString(b); !strings.HasPrefix(tok, "pypi-AgEIcHlwaS5vcmcCJ") {
		t.Errorf("macaroon token = %q, want prefix pypi-AgEIcHlwaS5vcmcCJ", tok)
	}
	if err := checkMacaroonV2(b); err != nil {
		t.Errorf("checkMacaroonV2(built) = %v", err)
	}
	for _, bad := range [][]byte{nil, {1}, b[:len(b)-1], append(b, 0), {2, 0, 0, 6, 32}} {
		if checkMacaroonV2(bad) == nil {
			t.Errorf("checkMacaroonV2(%x) = nil, want an error", bad)
		}
	}
	test, _ := Lookup("pypi")
	tok, err := Shape{Provider: "pypi", Format: test.Formats[1].Name}.Mint(seeded("test.pypi"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "pypi-"))
	if !strings.Contains(string(raw), "test.pypi.org") {
		t.Errorf("test.pypi.org stand-in %q lacks its location", tok)
	}
}

func TestCustomValid(t *testing.T) {
	s := Shape{Prefix: "sk-", Alphabet: AlphabetHex, Length: 20}
	tests := []struct {
		token string
		want  bool
	}{
		{"sk-0123456789abcdef0", true},
		{"sk-0123456789abcdef", false},   // short
		{"sk-0123456789abcdef01", false}, // long
		{"pk-0123456789abcdef0", false},  // prefix
		{"sk-0123456789abcdefg", false},  // alphabet
	}
	for _, tt := range tests {
		if got := s.Valid(tt.token); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.token, got, tt.want)
		}
	}
}

// FuzzShapeValid feeds arbitrary tokens and shapes to Valid: it never
// panics, and a provider shape it accepts matches the format's regex.
func FuzzShapeValid(f *testing.F) {
	f.Add(0, 0, "ghp_abc", "", "", 0)
	f.Add(3, 1, "pypi-AgEIcHlwaS5vcmcCJ", "", "", 0)
	f.Add(-1, 0, "sk-123", "sk-", AlphabetHex, 6)
	f.Add(-1, 0, "", "", "", -5)
	ps := Providers()
	f.Fuzz(func(t *testing.T, pi, fi int, token, prefix, alphabet string, length int) {
		s := Shape{Prefix: prefix, Alphabet: alphabet, Length: length}
		var re *regexp.Regexp
		if pi >= 0 {
			p := ps[pi%len(ps)]
			fmt := p.Formats[abs(fi)%len(p.Formats)]
			s = Shape{Provider: p.ID, Format: fmt.Name, Length: length}
			re = regexp.MustCompile(fmt.Regex)
		}
		if s.Valid(token) && re != nil && !re.MatchString(token) {
			t.Errorf("%+v.Valid(%q) = true, but the token does not match %s", s, token, re)
		}
	})
}

// FuzzCustomShape: the shape read off any value mints valid stand-ins that
// keep at most the value's short prefix.
func FuzzCustomShape(f *testing.F) {
	for _, v := range []string{"sk-abc", "xoxb-123-456", "3f2a9c1e-4b7d", "", "pass word", "ab_" + strings.Repeat("é", 9)} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		if len(value) > maxCustomLength {
			return
		}
		s := ShapeFor(nil, value)
		if !strings.HasPrefix(string(value), s.Prefix) || len(s.Prefix) > 12 {
			t.Fatalf("ShapeFor(%q).Prefix = %q, want a short prefix of the value", value, s.Prefix)
		}
		tok, err := s.Mint(seeded(string(value)))
		if err != nil {
			t.Fatalf("Mint(%+v): %v", s, err)
		}
		if !s.Valid(tok) || len(tok) != max(len(value), minCustomLength) {
			t.Fatalf("Mint(%+v) = %q: valid %v, want a valid token of the value's length", s, tok, s.Valid(tok))
		}
	})
}
