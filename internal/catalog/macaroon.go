package catalog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// PyPI API tokens are "pypi-" + a macaroon in the libmacaroons v2 binary
// format, base64url without padding. Upload tools (twine, uv, pypitoken)
// decode it, so a stand-in is a real macaroon: location from the format,
// a UUID identifier, one caveat, signed with a random root key nobody
// keeps.
//
// v2 layout: 0x02, then packets (type varint, length varint, data): the
// header section [location 1] identifier 2, end 0; each caveat section
// [location 1] identifier 2 [vid 4], end 0; end 0; signature 6 (32 bytes).

const (
	macEOS        = 0
	macLocation   = 1
	macIdentifier = 2
	macVID        = 4
	macSignature  = 6
)

// pypiUserCaveat is the caveat of a user-wide token in PyPI's legacy
// caveat format; pypiProjectCaveat scopes a token to one project, and its
// adjustable name is how a stand-in reaches a wanted length.
const (
	pypiUserCaveat    = `{"permissions": "user", "version": 1}`
	pypiProjectCaveat = `{"permissions": {"projects": ["%s"]}, "version": 1}`
)

func pypiMint(f *Format, g *rng, length int) (string, error) {
	loc, err := pypiLocation(f)
	if err != nil {
		return "", err
	}
	// Choose the caveat so the encoded token is as close to length as can
	// be: the user caveat, or a project caveat with a name of 1..300.
	bestName, bestDiff := -1, -1
	for name := -1; name <= 300; name++ {
		c := len(pypiUserCaveat)
		if name >= 0 {
			if name == 0 {
				continue
			}
			c = len(pypiProjectCaveat) - 2 + name
		}
		n := 1 + packetLen(len(loc)) + packetLen(36) + 1 + packetLen(c) + 1 + 1 + packetLen(sha256.Size)
		total := len("pypi-") + base64.RawURLEncoding.EncodedLen(n)
		if d := abs(total - length); bestDiff < 0 || d < bestDiff {
			bestName, bestDiff = name, d
		}
	}
	caveat := pypiUserCaveat
	if bestName > 0 {
		name := make([]byte, bestName)
		for i := range name {
			name[i] = "abcdefghijklmnopqrstuvwxyz"[g.intn(26)]
		}
		caveat = fmt.Sprintf(pypiProjectCaveat, name)
	}
	id := make([]byte, 16)
	g.fill(id)
	rootKey := make([]byte, 32)
	g.fill(rootKey)
	if g.err != nil {
		return "", g.err
	}
	// UUID version 4 layout.
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	ident := fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])

	return "pypi-" + base64.RawURLEncoding.EncodeToString(buildMacaroon(loc, ident, caveat, rootKey)), nil
}

// buildMacaroon serializes a v2 macaroon with one first-party caveat,
// signed as libmacaroons (and pymacaroons) sign.
func buildMacaroon(loc, ident, caveat string, rootKey []byte) []byte {
	key := hmacSHA256([]byte("macaroons-key-generator"), rootKey)
	sig := hmacSHA256(key, []byte(ident))
	sig = hmacSHA256(sig, []byte(caveat))

	b := []byte{2}
	b = appendPacket(b, macLocation, loc)
	b = appendPacket(b, macIdentifier, ident)
	b = append(b, macEOS)
	b = appendPacket(b, macIdentifier, caveat)
	b = append(b, macEOS)
	b = append(b, macEOS)
	return appendPacket(b, macSignature, string(sig))
}

// pypiLocation reads the macaroon location from the format's prefix,
// which is "pypi-" + the base64 of the macaroon's first bytes.
func pypiLocation(f *Format) (string, error) {
	enc := strings.TrimPrefix(f.Prefix, "pypi-")
	if len(enc)%4 == 1 {
		enc = enc[:len(enc)-1] // a lone character holds no whole byte
	}
	head, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(head) < 3 || head[0] != 2 || head[1] != macLocation || len(head) < 3+int(head[2]) {
		return "", fmt.Errorf("format %q: prefix is not a macaroon header", f.Name)
	}
	return string(head[3 : 3+head[2]]), nil
}

func pypiValid(f *Format, tok string) bool {
	enc, ok := strings.CutPrefix(tok, "pypi-")
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return false
	}
	return checkMacaroonV2(b) == nil
}

var errMacaroon = errors.New("malformed macaroon")

// checkMacaroonV2 parses a v2 binary macaroon, checking its structure.
func checkMacaroonV2(b []byte) error {
	if len(b) == 0 || b[0] != 2 {
		return errMacaroon
	}
	b = b[1:]
	b, err := macSection(b, true)
	if err != nil {
		return err
	}
	for {
		if len(b) == 0 {
			return errMacaroon
		}
		if b[0] == macEOS {
			b = b[1:]
			break
		}
		if b, err = macSection(b, false); err != nil {
			return err
		}
	}
	typ, data, rest, err := macPacket(b)
	if err != nil || typ != macSignature || len(data) != sha256.Size || len(rest) != 0 {
		return errMacaroon
	}
	return nil
}

// macSection reads packets up to and including the end marker; a section
// needs an identifier, and field types must increase.
func macSection(b []byte, header bool) ([]byte, error) {
	last, hasID := 0, false
	for {
		typ, _, rest, err := macPacket(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if typ == macEOS {
			if !hasID {
				return nil, errMacaroon
			}
			return b, nil
		}
		allowed := typ == macLocation || typ == macIdentifier || (!header && typ == macVID)
		if !allowed || typ <= last {
			return nil, errMacaroon
		}
		last = typ
		hasID = hasID || typ == macIdentifier
	}
}

// macPacket reads one packet; the end marker has no length or data.
func macPacket(b []byte) (typ int, data, rest []byte, err error) {
	t, n := binary.Uvarint(b)
	if n <= 0 || t > 127 {
		return 0, nil, nil, errMacaroon
	}
	b = b[n:]
	if t == macEOS {
		return macEOS, nil, b, nil
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return 0, nil, nil, errMacaroon
	}
	b = b[n:]
	return int(t), b[:l], b[l:], nil
}

func appendPacket(b []byte, typ int, data string) []byte {
	b = binary.AppendUvarint(b, uint64(typ))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// packetLen is the encoded size of a packet of n data bytes.
func packetLen(n int) int {
	return 1 + len(binary.AppendUvarint(nil, uint64(n))) + n
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
