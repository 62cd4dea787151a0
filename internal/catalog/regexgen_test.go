package catalog

import (
	"errors"
	"regexp"
	"testing"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		expr    string
		want    int // requested length
		wantLen int
	}{
		{`^abc$`, 0, 3},
		{`^[0-9a-f]{8}-[0-9a-f]{4}$`, 0, 13},
		{`^x[a-z]{2,5}$`, 4, 4},
		{`^x[a-z]{2,5}$`, 100, 6},     // nearest: the longest
		{`^x[a-z]{2,5}$`, 0, 3},       // nearest: the shortest
		{`^(?:ab|cdef)$`, 4, 4},       // the branch that fits
		{`^(?:ab|cdef)$`, 3, 2},       // tie: the shorter
		{`^a(?:-[0-9])?$`, 3, 3},      // optional part taken to fit
		{`^a(?:-[0-9])?$`, 1, 1},      // and left out
		{`^sk_[A-Za-z0-9]+$`, 50, 50}, // unbounded
		{`^[0-9]{16,}:[a-z]{32,}$`, 60, 60},
		{`^(?:x[0-9]{1,3}){2,4}$`, 11, 11}, // variable-length repeat
		{`^dp\.(?:st(?:\.[a-z0-9_-]{2,35})?|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}$`, 60, 60},
		{`^sk-proj-(?:[A-Za-z0-9_-]{74}T3BlbkFJ[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58}T3BlbkFJ[A-Za-z0-9_-]{58})$`, 132, 132},
		{`^sk-proj-(?:[A-Za-z0-9_-]{74}T3BlbkFJ[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58}T3BlbkFJ[A-Za-z0-9_-]{58})$`, 150, 164},
		{`^$`, 5, 0},
		{`(?i)^ab[^\x00-\x60]$`, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := compileGen(tt.expr)
			if err != nil {
				t.Fatalf("compileGen(%q): %v", tt.expr, err)
			}
			re := regexp.MustCompile(`^(?:` + tt.expr + `)$`)
			for i := range 50 {
				got, err := p.generate(newRNG(seeded(tt.expr+string(rune(i)))), tt.want)
				if err != nil {
					t.Fatalf("generate(%q, %d): %v", tt.expr, tt.want, err)
				}
				if !re.Match(got) || len(got) != tt.wantLen {
					t.Fatalf("generate(%q, %d) = %q (length %d), want a match of length %d", tt.expr, tt.want, got, len(got), tt.wantLen)
				}
			}
		})
	}
}

func TestGenerateUnsupported(t *testing.T) {
	for _, expr := range []string{
		`a\bb`,       // word boundary
		`a^b`,        // anchor inside
		`(^a)`,       // anchor not at top level
		`^a|^b`,      // anchors in branches
		`[^\x00-~]`,  // no printable ASCII
		`a{1000}{5}`, // longer than maxGenLen
		`(`,          // not a regex
	} {
		if _, err := compileGen(expr); err == nil {
			t.Errorf("compileGen(%q) error = nil, want one", expr)
		}
	}
	if _, err := compileGen(`a\bb`); !errors.Is(err, errGenUnsupported) {
		t.Errorf("compileGen(word boundary) = %v, want errGenUnsupported", err)
	}
}

func TestRNGUniform(t *testing.T) {
	// 62 symbols (not a power of two) drawn 62,000 times: each about 1,000.
	g := newRNG(seeded("uniform"))
	counts := make([]int, 62)
	for range 62_000 {
		counts[g.intn(62)]++
	}
	for i, c := range counts {
		// Standard deviation about 31: 200 is over 6 sigma.
		if c < 800 || c > 1200 {
			t.Errorf("symbol %d drawn %d times, want about 1000", i, c)
		}
	}
	big := newRNG(seeded("big"))
	for range 1000 {
		if v := big.intn(1000); v < 0 || v >= 1000 {
			t.Fatalf("intn(1000) = %d", v)
		}
	}
}

// FuzzGenerate: for any expression the generator accepts, every output
// matches it, whatever length is asked for.
func FuzzGenerate(f *testing.F) {
	for _, s := range []string{
		`^ghp_[A-Za-z0-9]{36}$`, `^(?:ab|cdef)+x?$`, `a*b+c?`, `(?i)[a-c]{2,}`, `^$`,
		`^dp\.(?:st(?:\.[a-z0-9_-]{2,35})?|sa)\.[A-Za-z0-9]{40,44}$`, `(a|)*`, `.{3}`,
	} {
		f.Add(s, 10, []byte("seed"))
	}
	f.Fuzz(func(t *testing.T, expr string, want int, seed []byte) {
		if len(expr) > 200 {
			return
		}
		p, err := compileGen(expr)
		if err != nil {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("compileGen accepted %q, which regexp rejects: %v", expr, err)
		}
		out, err := p.generate(newRNG(seeded(string(seed))), want%(maxGenLen+100))
		if err != nil {
			t.Fatalf("generate(%q): %v", expr, err)
		}
		// Leftmost-longest: a whole-string match exists iff the longest
		// match at the leftmost position spans the string.
		re.Longest()
		if loc := re.FindIndex(out); loc == nil || loc[0] != 0 || loc[1] != len(out) {
			t.Fatalf("generate(%q) = %q, which does not match as a whole (match at %v)", expr, out, loc)
		}
	})
}
