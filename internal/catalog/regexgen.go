package catalog

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"regexp/syntax"
	"sync"
	"unicode/utf8"
)

// This file generates random strings matching a regular expression, of a
// chosen length where the expression allows several. Key formats are given
// as regexes (from the research reference), so one generator serves every
// provider; checksums are fixed up afterwards (checksum.go).
//
// Lengths are in bytes. Character classes are narrowed to printable ASCII,
// which every key alphabet is.

// maxGenLen bounds generated strings: unbounded repeats (x+, x{n,}) are
// taken to stop there.
const maxGenLen = 4096

// maxGenWork bounds the work of preparing one expression, so that a hostile
// or silly expression (the fuzzer writes plenty) fails instead of hanging.
const maxGenWork = 20_000_000

var errGenUnsupported = errors.New("unsupported regular expression")

// genPlan is an expression prepared for generation.
type genPlan struct {
	root *gnode
}

type gkind int

const (
	gEmpty gkind = iota
	gLit
	gClass
	gConcat
	gAlt
	gRepeat
)

type gnode struct {
	kind  gkind
	lit   []byte // gLit
	class []byte // gClass: the characters to pick from
	subs  []*gnode
	min   int // gRepeat
	max   int // gRepeat, capped
	// lens holds every length (≤ maxGenLen) a match of this node can have.
	lens bitset
	// fixed is the length of every match, or -1 if matches vary.
	fixed int
	// suffix[i] holds the lengths of subs[i:] concatenated (gConcat).
	suffix []bitset
	// powers[k] holds the lengths of k copies of subs[0] (gRepeat of a
	// variable-length sub).
	powers []bitset
}

var genPlans sync.Map // regex string -> *genPlan or error

// planFor returns the cached plan for expr.
func planFor(expr string) (*genPlan, error) {
	if v, ok := genPlans.Load(expr); ok {
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v.(*genPlan), nil
	}
	p, err := compileGen(expr)
	if err != nil {
		genPlans.Store(expr, err)
		return nil, err
	}
	genPlans.Store(expr, p)
	return p, nil
}

// compileGen prepares expr. Anchors are allowed only at the very start and
// end; the result always describes whole-string matches.
func compileGen(expr string) (*genPlan, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("parse regex: %w", err)
	}
	re = stripAnchors(re)
	b := &genBuilder{}
	root, err := b.build(re)
	if err != nil {
		return nil, err
	}
	if root.lens.empty() {
		return nil, fmt.Errorf("%w: no match of at most %d bytes", errGenUnsupported, maxGenLen)
	}
	return &genPlan{root: root}, nil
}

// stripAnchors removes leading begin-of-text/line and trailing
// end-of-text/line operators of the top-level sequence: generated strings
// are whole matches, so these always hold.
func stripAnchors(re *syntax.Regexp) *syntax.Regexp {
	isBegin := func(r *syntax.Regexp) bool { return r.Op == syntax.OpBeginText || r.Op == syntax.OpBeginLine }
	isEnd := func(r *syntax.Regexp) bool { return r.Op == syntax.OpEndText || r.Op == syntax.OpEndLine }
	switch {
	case isBegin(re) || isEnd(re):
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	case re.Op != syntax.OpConcat:
		return re
	}
	subs := re.Sub
	for len(subs) > 0 && isBegin(subs[0]) {
		subs = subs[1:]
	}
	for len(subs) > 0 && isEnd(subs[len(subs)-1]) {
		subs = subs[:len(subs)-1]
	}
	out := *re
	out.Sub = subs
	return &out
}

type genBuilder struct {
	work int
}

func (b *genBuilder) spend(n int) error {
	b.work += n
	if b.work > maxGenWork {
		return fmt.Errorf("%w: too complex", errGenUnsupported)
	}
	return nil
}

func (b *genBuilder) build(re *syntax.Regexp) (*gnode, error) {
	if err := b.spend(1); err != nil {
		return nil, err
	}
	switch re.Op {
	case syntax.OpEmptyMatch:
		return leaf(gEmpty, nil, nil), nil
	case syntax.OpLiteral:
		var lit []byte
		for _, r := range re.Rune {
			lit = utf8.AppendRune(lit, r)
		}
		if len(lit) > maxGenLen {
			return nil, fmt.Errorf("%w: literal too long", errGenUnsupported)
		}
		return leaf(gLit, lit, nil), nil
	case syntax.OpCharClass:
		return classNode(re.Rune)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return classNode([]rune{0, utf8.MaxRune})
	case syntax.OpCapture:
		return b.build(re.Sub[0])
	case syntax.OpConcat:
		n := &gnode{kind: gConcat}
		for _, sub := range re.Sub {
			s, err := b.build(sub)
			if err != nil {
				return nil, err
			}
			n.subs = append(n.subs, s)
		}
		// suffix[i] = lens(subs[i]) + suffix[i+1]
		n.suffix = make([]bitset, len(n.subs)+1)
		n.suffix[len(n.subs)] = singleton(0)
		n.fixed = 0
		for i := len(n.subs) - 1; i >= 0; i-- {
			s, err := b.sum(n.subs[i].lens, n.suffix[i+1])
			if err != nil {
				return nil, err
			}
			n.suffix[i] = s
			if n.fixed >= 0 && n.subs[i].fixed >= 0 {
				n.fixed += n.subs[i].fixed
			} else {
				n.fixed = -1
			}
		}
		n.lens = n.suffix[0]
		if n.fixed > maxGenLen {
			n.fixed = -1
		}
		return n, nil
	case syntax.OpAlternate:
		n := &gnode{kind: gAlt, lens: newBitset()}
		for i, sub := range re.Sub {
			s, err := b.build(sub)
			if err != nil {
				return nil, err
			}
			n.subs = append(n.subs, s)
			n.lens.or(s.lens)
			if i == 0 {
				n.fixed = s.fixed
			} else if n.fixed != s.fixed {
				n.fixed = -1
			}
		}
		return n, nil
	case syntax.OpStar:
		return b.repeat(re.Sub[0], 0, -1)
	case syntax.OpPlus:
		return b.repeat(re.Sub[0], 1, -1)
	case syntax.OpQuest:
		return b.repeat(re.Sub[0], 0, 1)
	case syntax.OpRepeat:
		return b.repeat(re.Sub[0], re.Min, re.Max)
	}
	// Word boundaries, anchors in the middle, no-match: no use for keys.
	return nil, fmt.Errorf("%w: %v", errGenUnsupported, re.Op)
}

func leaf(kind gkind, lit, class []byte) *gnode {
	n := &gnode{kind: kind, lit: lit, class: class}
	switch kind {
	case gEmpty:
		n.fixed = 0
	case gLit:
		n.fixed = len(lit)
	case gClass:
		n.fixed = 1
	}
	n.lens = singleton(n.fixed)
	return n
}

// classNode narrows a class (pairs of rune ranges) to printable ASCII.
func classNode(ranges []rune) (*gnode, error) {
	var class []byte
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := max(ranges[i], 0x20), min(ranges[i+1], 0x7e)
		for c := lo; c <= hi; c++ {
			class = append(class, byte(c))
		}
	}
	if len(class) == 0 {
		return nil, fmt.Errorf("%w: character class without printable ASCII", errGenUnsupported)
	}
	return leaf(gClass, nil, class), nil
}

func (b *genBuilder) repeat(re *syntax.Regexp, lo, hi int) (*gnode, error) {
	sub, err := b.build(re)
	if err != nil {
		return nil, err
	}
	n := &gnode{kind: gRepeat, subs: []*gnode{sub}, min: lo, max: hi, fixed: -1}
	if sub.fixed >= 0 {
		s := sub.fixed
		if s == 0 {
			n.max, n.fixed = lo, 0
			n.lens = singleton(0)
			return n, nil
		}
		if n.max < 0 || n.max*s > maxGenLen {
			n.max = maxGenLen / s
		}
		n.lens = newBitset()
		for k := lo; k <= n.max; k++ {
			n.lens.set(k * s)
		}
		if lo == n.max && lo*s <= maxGenLen {
			n.fixed = lo * s
		}
		return n, nil
	}
	// A variable-length sub: powers[k] = powers[k-1] + lens(sub).
	limit := hi
	if limit < 0 || limit > lo+maxGenLen {
		// Copies may be empty, so the count is not bounded by length;
		// beyond lo+maxGenLen more copies add nothing new in practice.
		limit = lo + maxGenLen
	}
	n.powers = []bitset{singleton(0)}
	n.lens = newBitset()
	for k := 0; ; k++ {
		if k >= lo {
			n.lens.or(n.powers[k])
		}
		if k == limit || n.powers[k].empty() {
			break
		}
		next, err := b.sum(n.powers[k], sub.lens)
		if err != nil {
			return nil, err
		}
		// Once copies stop adding lengths beyond lo, stop.
		if k+1 > lo && next.equal(n.powers[k]) {
			n.powers = append(n.powers, next)
			break
		}
		n.powers = append(n.powers, next)
	}
	n.max = len(n.powers) - 1
	return n, nil
}

// sum returns {x+y : x in a, y in b, x+y ≤ maxGenLen}.
func (b *genBuilder) sum(x, y bitset) (bitset, error) {
	out := newBitset()
	for i := range x.members() {
		if err := b.spend(len(out)); err != nil {
			return nil, err
		}
		out.orShifted(y, i)
	}
	return out, nil
}

// generate appends a random match of the plan with length near want (the
// nearest length the expression allows; ties go to the shorter).
func (p *genPlan) generate(g *rng, want int) ([]byte, error) {
	n, ok := p.root.lens.nearest(want)
	if !ok {
		return nil, fmt.Errorf("%w: no match length", errGenUnsupported)
	}
	out := make([]byte, 0, n)
	out = p.root.gen(g, n, out)
	if g.err != nil {
		return nil, g.err
	}
	return out, nil
}

// allowsSeveralLengths reports whether matches of the plan vary in length.
func (p *genPlan) allowsSeveralLengths() bool { return p.root.fixed < 0 }

// gen appends a random match of n of exactly length t, which must be in
// n.lens.
func (n *gnode) gen(g *rng, t int, out []byte) []byte {
	switch n.kind {
	case gLit:
		return append(out, n.lit...)
	case gClass:
		return append(out, n.class[g.intn(len(n.class))])
	case gConcat:
		for i, sub := range n.subs {
			l := sub.fixed
			if l < 0 {
				l = pick(g, sub.lens, t, n.suffix[i+1])
			}
			out = sub.gen(g, l, out)
			t -= l
		}
		return out
	case gAlt:
		var fits []*gnode
		for _, sub := range n.subs {
			if sub.lens.has(t) {
				fits = append(fits, sub)
			}
		}
		return fits[g.intn(len(fits))].gen(g, t, out)
	case gRepeat:
		sub := n.subs[0]
		if sub.fixed >= 0 {
			k := n.min
			if sub.fixed > 0 {
				k = t / sub.fixed
			}
			for range k {
				out = sub.gen(g, sub.fixed, out)
			}
			return out
		}
		var ks []int
		for k := n.min; k < len(n.powers); k++ {
			if n.powers[k].has(t) {
				ks = append(ks, k)
			}
		}
		for k := ks[g.intn(len(ks))]; k > 0; k-- {
			l := pick(g, sub.lens, t, n.powers[k-1])
			out = sub.gen(g, l, out)
			t -= l
		}
		return out
	}
	return out
}

// pick chooses a random l in lens such that t-l is in rest.
func pick(g *rng, lens bitset, t int, rest bitset) int {
	var fits []int
	for l := range lens.members() {
		if l > t {
			break
		}
		if rest.has(t - l) {
			fits = append(fits, l)
		}
	}
	return fits[g.intn(len(fits))]
}

// bitset is a set of lengths 0..maxGenLen.
type bitset []uint64

const bitsetWords = maxGenLen/64 + 1

func newBitset() bitset { return make(bitset, bitsetWords) }

func singleton(i int) bitset {
	b := newBitset()
	b.set(i)
	return b
}

func (b bitset) set(i int) {
	if i >= 0 && i <= maxGenLen {
		b[i/64] |= 1 << (i % 64)
	}
}

func (b bitset) has(i int) bool {
	return i >= 0 && i <= maxGenLen && b[i/64]&(1<<(i%64)) != 0
}

func (b bitset) or(c bitset) {
	for i := range b {
		b[i] |= c[i]
	}
}

func (b bitset) equal(c bitset) bool {
	for i := range b {
		if b[i] != c[i] {
			return false
		}
	}
	return true
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// orShifted adds {x+k : x in c} (dropping what passes maxGenLen).
func (b bitset) orShifted(c bitset, k int) {
	words, shift := k/64, uint(k%64)
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] == 0 {
			continue
		}
		j := i + words
		if j < len(b) {
			b[j] |= c[i] << shift
		}
		if shift > 0 && j+1 < len(b) {
			b[j+1] |= c[i] >> (64 - shift)
		}
	}
	// Clear bits past maxGenLen in the last word.
	b[len(b)-1] &= (1 << (maxGenLen%64 + 1)) - 1
}

// members yields the set's elements in increasing order.
func (b bitset) members() func(yield func(int) bool) {
	return func(yield func(int) bool) {
		for i, w := range b {
			for w != 0 {
				t := bits.TrailingZeros64(w)
				if !yield(i*64 + t) {
					return
				}
				w &= w - 1
			}
		}
	}
}

// nearest returns the element closest to want (the smaller on a tie).
func (b bitset) nearest(want int) (int, bool) {
	want = max(0, min(want, maxGenLen))
	for d := 0; d <= maxGenLen; d++ {
		if b.has(want - d) {
			return want - d, true
		}
		if b.has(want + d) {
			return want + d, true
		}
	}
	return 0, false
}

// rng draws uniform random numbers from a reader. A read error sticks in
// err (and later draws return 0), so generation code needs no error paths.
type rng struct {
	r   io.Reader
	buf [128]byte
	pos int
	n   int
	err error
}

func newRNG(r io.Reader) *rng { return &rng{r: r} }

func (g *rng) byte() byte {
	if g.err != nil {
		return 0
	}
	if g.pos == g.n {
		n, err := io.ReadAtLeast(g.r, g.buf[:], 1)
		if err != nil {
			g.err = fmt.Errorf("read random: %w", err)
			return 0
		}
		g.pos, g.n = 0, n
	}
	c := g.buf[g.pos]
	g.pos++
	return c
}

// intn returns a uniform number in [0, n), n ≥ 1, by rejection sampling.
func (g *rng) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if n <= 256 {
		// Reject bytes in the incomplete top block.
		limit := 256 - 256%n
		for {
			c := int(g.byte())
			if g.err != nil {
				return 0
			}
			if c < limit {
				return c % n
			}
		}
	}
	limit := uint64(1<<32) - uint64(1<<32)%uint64(n)
	for {
		var v uint64
		for range 4 {
			v = v<<8 | uint64(g.byte())
		}
		if g.err != nil {
			return 0
		}
		if v < limit {
			return int(v % uint64(n))
		}
	}
}

// fill fills p with random bytes.
func (g *rng) fill(p []byte) {
	for i := range p {
		p[i] = g.byte()
	}
}
