package catalog

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// A scheme is what a format's Checksum names: how a stand-in is made to
// carry the vendor's checksum or structure, and how one is checked.
//
// Where the vendor's check is a suffix computed over the rest, the generic
// generator makes a regex match and fix overwrites the suffix (the suffix
// alphabet of each format's regex admits every checksum value). Where the
// structure is more than a suffix, mint builds the whole token.
type scheme struct {
	fix   func(f *Format, tok []byte)
	mint  func(f *Format, g *rng, length int) (string, error)
	valid func(f *Format, tok string) bool
}

var schemes = map[string]scheme{
	"github-crc32-base62":          {fix: githubFix, valid: githubValid},
	"cloudflare-crc32-hex":         {fix: cloudflareFix, valid: cloudflareValid},
	"atlassian-crc32-hex":          {fix: atlassianFix, valid: atlassianValid},
	"grafana-crc32-le-hex":         {fix: grafanaFix, valid: grafanaValid},
	"gitlab-glpat-crc32-base36":    {mint: gitlabMint(false), valid: gitlabValid(false)},
	"gitlab-glpat-v1-crc32-base36": {mint: gitlabMint(true), valid: gitlabValid(true)},
	"pypi-macaroon-v2":             {mint: pypiMint, valid: pypiValid},
	"discord-snowflake-base64":     {mint: discordMint, valid: discordValid},
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// GitHub (github.blog 2021-04-05, "Behind GitHub's new authentication token
// formats"): the last 6 characters are the CRC32 of the 30 random
// characters after the prefix, base62 (0-9A-Za-z), zero-padded.

func githubChecksum(body string) string {
	var out [6]byte
	v := crc32.ChecksumIEEE([]byte(body))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = base62Digits[v%62]
		v /= 62
	}
	return string(out[:])
}

func githubFix(f *Format, tok []byte) {
	n := len(tok)
	copy(tok[n-6:], githubChecksum(string(tok[len(f.Prefix):n-6])))
}

func githubValid(f *Format, tok string) bool {
	n := len(tok)
	return n >= len(f.Prefix)+6 && githubChecksum(tok[len(f.Prefix):n-6]) == tok[n-6:]
}

// Cloudflare (cfut_, cfat_, cfk_): the last 8 characters are the lowercase
// hex CRC32 of the 40-character body between prefix and checksum.

func crcHex(s string) string {
	return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(s)))
}

func cloudflareFix(f *Format, tok []byte) {
	n := len(tok)
	copy(tok[n-8:], crcHex(string(tok[len(f.Prefix):n-8])))
}

func cloudflareValid(f *Format, tok string) bool {
	n := len(tok)
	return n >= len(f.Prefix)+8 && crcHex(tok[len(f.Prefix):n-8]) == tok[n-8:]
}

// Atlassian (ATATT3xFfGF0): the last 8 characters are the uppercase hex
// CRC32 of everything before them, prefix and '=' included.

func atlassianFix(_ *Format, tok []byte) {
	n := len(tok)
	copy(tok[n-8:], strings.ToUpper(crcHex(string(tok[:n-8]))))
}

func atlassianValid(_ *Format, tok string) bool {
	n := len(tok)
	return n >= 8 && strings.ToUpper(crcHex(tok[:n-8])) == tok[n-8:]
}

// Grafana service account tokens (glsa_<32>_<8 hex>): the hex is the CRC32
// of everything before "_<8 hex>", written as little-endian bytes.

func grafanaChecksum(s string) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc32.ChecksumIEEE([]byte(s)))
	return hex.EncodeToString(b[:])
}

func grafanaFix(_ *Format, tok []byte) {
	n := len(tok)
	copy(tok[n-8:], grafanaChecksum(string(tok[:n-9])))
}

func grafanaValid(_ *Format, tok string) bool {
	n := len(tok)
	return n >= 9 && tok[n-9] == '_' && grafanaChecksum(tok[:n-9]) == tok[n-8:]
}

// GitLab routable tokens (handbook "Routable tokens" design document and
// gitlab-org/gitlab lib/authn/token_field/generator/routable_token.rb):
//
//	payload = base64url_nopad(routing + 16 random bytes + byte 16)
//	routing = sorted "k:v" lines joined by \n, ids in base36 (c cell,
//	          g group, o organization, p project, u user)
//	token   = prefix + payload + "." [+ version "01" + "."]
//	          + base36(len(payload)) padded to 2
//	          + base36(crc32(everything before)) padded to 7

const gitlabRandomBytes = 16

func base36(v uint64, width int) string {
	s := strconv.FormatUint(v, 36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// gitlabTail is what follows the payload: "." [+ "01."] + length + crc.
func gitlabTailLen(versioned bool) int {
	if versioned {
		return 1 + 3 + 2 + 7
	}
	return 1 + 2 + 7
}

func gitlabMint(versioned bool) func(f *Format, g *rng, length int) (string, error) {
	return func(f *Format, g *rng, length int) (string, error) {
		// The payload length P follows from the wanted length; base64
		// without padding never has P%4 == 1, and the routing part has
		// bounds, so take the nearest length that exists.
		p := length - len(f.Prefix) - gitlabTailLen(versioned)
		p = max(27, min(p, 300))
		if p%4 == 1 {
			p-- // one shorter rather than longer
		}
		raw := p / 4 * 3
		switch p % 4 {
		case 2:
			raw++
		case 3:
			raw += 2
		}
		routing := gitlabRouting(g, raw-gitlabRandomBytes-1)
		payload := make([]byte, 0, len(routing)+gitlabRandomBytes+1)
		payload = append(payload, routing...)
		random := make([]byte, gitlabRandomBytes)
		g.fill(random)
		payload = append(payload, random...)
		payload = append(payload, gitlabRandomBytes)
		if g.err != nil {
			return "", g.err
		}
		enc := base64.RawURLEncoding.EncodeToString(payload)
		tok := f.Prefix + enc + "."
		if versioned {
			tok += "01."
		}
		tok += base36(uint64(len(enc)), 2)
		return tok + base36(uint64(crc32.ChecksumIEEE([]byte(tok))), 7), nil
	}
}

// gitlabRouting makes a plausible routing payload of about n bytes (at
// least "o:<id>", at most five keys of 13 base36 digits, the largest
// bigint).
func gitlabRouting(g *rng, n int) string {
	keys := []string{"o"}
	switch {
	case n > 47:
		keys = []string{"c", "g", "o", "p", "u"}
	case n > 31:
		keys = []string{"c", "g", "o", "u"}
	case n > 15:
		keys = []string{"c", "o", "u"}
	case n > 7:
		keys = []string{"c", "o"}
	}
	// Each line is "k:" + digits, lines joined by \n.
	digits := n - 3*len(keys) + 1
	digits = max(digits, len(keys))
	var b strings.Builder
	for i, k := range keys {
		d := digits / (len(keys) - i)
		d = max(1, min(d, 13))
		digits -= d
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + ":")
		// Ids have no leading zero.
		b.WriteByte(base36Digit(1 + g.intn(35)))
		for range d - 1 {
			b.WriteByte(base36Digit(g.intn(36)))
		}
	}
	return b.String()
}

func base36Digit(i int) byte { return "0123456789abcdefghijklmnopqrstuvwxyz"[i] }

func gitlabValid(versioned bool) func(f *Format, tok string) bool {
	return func(f *Format, tok string) bool {
		n := len(tok)
		tail := gitlabTailLen(versioned)
		if n < len(f.Prefix)+tail || !strings.HasPrefix(tok, f.Prefix) {
			return false
		}
		crc, err := strconv.ParseUint(tok[n-7:], 36, 32)
		if err != nil || uint32(crc) != crc32.ChecksumIEEE([]byte(tok[:n-7])) {
			return false
		}
		plen, err := strconv.ParseUint(tok[n-9:n-7], 36, 16)
		return err == nil && int(plen) == n-len(f.Prefix)-tail
	}
}

// Discord bot tokens: base64(bot user id digits) "." base64(4-byte
// timestamp) "." HMAC. Libraries and scanners decode the first segment to
// the numeric id, so a stand-in has digits there.

func discordMint(f *Format, g *rng, length int) (string, error) {
	// Segment lengths: ids of 18, 19, 20, 21 digits encode to 24, 26, 27,
	// 28 characters; the HMAC segment is 27..38. Prefer a 19-digit id (ids
	// of bots created since 2022) and a 38-character HMAC.
	idDigits := map[int]int{24: 18, 26: 19, 27: 20, 28: 21}
	first, last := 26, 38
	best := -1
	for _, a := range []int{26, 27, 24, 28} {
		for b := 38; b >= 27; b-- {
			if d := abs(a + 1 + 6 + 1 + b - length); best < 0 || d < best {
				best, first, last = d, a, b
			}
		}
	}
	digits := make([]byte, idDigits[first])
	digits[0] = '1' + byte(g.intn(9))
	for i := 1; i < len(digits); i++ {
		digits[i] = '0' + byte(g.intn(10))
	}
	ts := make([]byte, 4)
	g.fill(ts)
	mac := make([]byte, last)
	for i := range mac {
		mac[i] = base64URLDigits[g.intn(64)]
	}
	if g.err != nil {
		return "", g.err
	}
	return base64.RawStdEncoding.EncodeToString(digits) + "." +
		base64.RawURLEncoding.EncodeToString(ts) + "." + string(mac), nil
}

const base64URLDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func discordValid(_ *Format, tok string) bool {
	first, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	id, err := base64.RawStdEncoding.DecodeString(first)
	if err != nil || len(id) < 17 || id[0] == '0' {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
