package catalog

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Shape is what a stand-in is minted from: a provider's format, or for a
// custom secret a shape read off the value (prefix, alphabet, length). It is
// stored (as JSON) with each binding so the stand-in never changes shape
// when the secret is rotated.
type Shape struct {
	Provider string `json:"provider,omitempty"`
	Format   string `json:"format,omitempty"`
	// Length is the wanted total length where the format allows several
	// (0: the format's default).
	Length int `json:"length,omitempty"`
	// Custom shapes: prefix kept from the value, alphabet of the rest.
	Prefix   string `json:"prefix,omitempty"`
	Alphabet string `json:"alphabet,omitempty"`
}

// ShapeFor picks the stand-in shape for value stored under provider p (nil
// for a custom secret). With a provider: the first format whose regex the
// value matches, with the value's length where the format allows several;
// if none matches, the provider's main format. Custom: the value's own shape.
//
// The value is only read: no more of it than a custom shape's Prefix is
// kept, and nothing of it for a provider's shape.
func ShapeFor(p *Provider, value []byte) Shape {
	if p == nil {
		return customShape(value)
	}
	for _, f := range p.Formats {
		re, err := regexpFor(f.Regex)
		if err != nil || !re.Match(value) {
			continue
		}
		s := Shape{Provider: p.ID, Format: f.Name}
		if plan, err := planFor(f.Regex); err == nil && plan.allowsSeveralLengths() {
			s.Length = len(value)
		}
		return s
	}
	s := Shape{Provider: p.ID}
	if len(p.Formats) > 0 {
		s.Format = p.Formats[0].Name
	}
	return s
}

// Mint makes a random stand-in of shape s from r (checksums computed).
//
// The length is s.Length where the format allows it, else the nearest the
// format allows; with no Length, the format's typical length.
func (s Shape) Mint(r io.Reader) (string, error) {
	g := newRNG(r)
	if s.Provider == "" {
		return s.mintCustom(g)
	}
	f, err := s.format()
	if err != nil {
		return "", err
	}
	length := s.Length
	if length <= 0 {
		length = f.Length
	}
	sc := schemes[f.Checksum]
	if sc.mint != nil {
		return sc.mint(f, g, length)
	}
	plan, err := planFor(f.Regex)
	if err != nil {
		return "", fmt.Errorf("format %q: %w", f.Name, err)
	}
	tok, err := plan.generate(g, length)
	if err != nil {
		return "", fmt.Errorf("mint %q: %w", f.Name, err)
	}
	if sc.fix != nil {
		sc.fix(f, tok)
	}
	return string(tok), nil
}

// Valid reports whether token has shape s (regex and checksum).
//
// A custom shape checks prefix, alphabet and length.
func (s Shape) Valid(token string) bool {
	if s.Provider == "" {
		return s.validCustom(token)
	}
	f, err := s.format()
	if err != nil {
		return false
	}
	re, err := regexpFor(f.Regex)
	if err != nil || !re.MatchString(token) {
		return false
	}
	if sc := schemes[f.Checksum]; sc.valid != nil {
		return sc.valid(f, token)
	}
	return true
}

// FormatName is a human name for the shape ("classic personal access
// token", or "custom").
func (s Shape) FormatName() string {
	if s.Provider == "" {
		return "custom"
	}
	f, err := s.format()
	if err != nil {
		return s.Format
	}
	return f.Name
}

// format finds the shape's format. An empty Format means the provider's
// main format.
func (s Shape) format() (*Format, error) {
	p, ok := lookup(s.Provider)
	if !ok {
		return nil, fmt.Errorf("unknown provider %q", s.Provider)
	}
	for i := range p.Formats {
		if s.Format == "" || p.Formats[i].Name == s.Format {
			return &p.Formats[i], nil
		}
	}
	return nil, fmt.Errorf("provider %q has no key format %q", s.Provider, s.Format)
}

// Shapes returns the shape of each of p's formats, main format first.
func Shapes(p Provider) []Shape {
	out := make([]Shape, len(p.Formats))
	for i, f := range p.Formats {
		out[i] = Shape{Provider: p.ID, Format: f.Name}
	}
	return out
}

var regexps sync.Map // regex string -> *regexp.Regexp or error

func regexpFor(expr string) (*regexp.Regexp, error) {
	if v, ok := regexps.Load(expr); ok {
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		regexps.Store(expr, err)
		return nil, err
	}
	regexps.Store(expr, re)
	return re, nil
}

// Custom shapes.

// Alphabets of custom stand-ins, smallest first: a value's rest (after the
// kept prefix) gets the first one covering all its characters.
const (
	AlphabetHex       = "0123456789abcdef"
	AlphabetAlnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	AlphabetBase64URL = AlphabetAlnum + "_-"
	AlphabetToken     = AlphabetAlnum + "_.~+/=-"
)

var customAlphabets = []string{AlphabetHex, AlphabetAlnum, AlphabetBase64URL, AlphabetToken}

// Custom stand-ins are at least minCustomLength long so that short values
// (PINs, short passwords) do not get guessable stand-ins, and at most
// maxCustomLength, the longest value a secret may hold.
const (
	minCustomLength = 16
	maxCustomLength = 8 << 10
)

// customShape reads a shape off a value: the vendor-style prefix ("sk-",
// "xoxb-", "pat_"), the alphabet and the length.
func customShape(value []byte) Shape {
	prefix := customPrefix(value)
	rest := value[len(prefix):]
	alphabet := customAlphabets[len(customAlphabets)-1]
	for _, a := range customAlphabets {
		if allIn(rest, a) {
			alphabet = a
			break
		}
	}
	return Shape{
		Prefix:   string(prefix),
		Alphabet: alphabet,
		Length:   max(len(value), minCustomLength),
	}
}

// customPrefix returns the leading run of value up to and including the
// first '-' or '_' when that is within the first 12 characters and only
// letters and digits come before it. Because that run is copied into the
// stand-in, it must look like a vendor's label rather than random key
// material: a run of mixed case ("aK3x_"), or of 6 or more hex characters
// (a UUID's first group), is not kept.
func customPrefix(value []byte) []byte {
	i := 0
	for i < len(value) && i < 12 && isAlnum(value[i]) {
		i++
	}
	if i == 0 || i >= len(value) || i >= 12 || (value[i] != '-' && value[i] != '_') {
		return nil
	}
	label := value[:i]
	hasUpper, hasLower, allHex := false, false, true
	for _, c := range label {
		hasUpper = hasUpper || ('A' <= c && c <= 'Z')
		hasLower = hasLower || ('a' <= c && c <= 'z')
		allHex = allHex && strings.IndexByte("0123456789abcdefABCDEF", c) >= 0
	}
	if (hasUpper && hasLower) || (allHex && len(label) >= 6) {
		return nil
	}
	return value[:i+1]
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func allIn(s []byte, alphabet string) bool {
	for _, c := range s {
		if strings.IndexByte(alphabet, c) < 0 {
			return false
		}
	}
	return true
}

func (s Shape) customParams() (length int, alphabet string, err error) {
	alphabet = s.Alphabet
	if alphabet == "" {
		alphabet = AlphabetAlnum
	}
	length = max(s.Length, minCustomLength)
	if length > maxCustomLength {
		return 0, "", fmt.Errorf("custom shape length %d is over %d", length, maxCustomLength)
	}
	if len(s.Prefix) >= length {
		return 0, "", fmt.Errorf("custom shape prefix is as long as the stand-in")
	}
	return length, alphabet, nil
}

func (s Shape) mintCustom(g *rng) (string, error) {
	length, alphabet, err := s.customParams()
	if err != nil {
		return "", err
	}
	b := make([]byte, length)
	copy(b, s.Prefix)
	for i := len(s.Prefix); i < length; i++ {
		b[i] = alphabet[g.intn(len(alphabet))]
	}
	if g.err != nil {
		return "", g.err
	}
	return string(b), nil
}

func (s Shape) validCustom(token string) bool {
	length, alphabet, err := s.customParams()
	if err != nil || len(token) != length {
		return false
	}
	rest, ok := strings.CutPrefix(token, s.Prefix)
	return ok && allIn([]byte(rest), alphabet)
}
