package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxBody is the largest request body. A secret value is at most 8 KiB; the
// rest leaves room for host lists and escaping.
const maxBody = 64 << 10

// decodeBody reads one JSON object into v. Unknown fields and trailing data
// are refused. Error messages give the position and the field (our field
// names only) but never echo the input: json's own messages quote numbers
// and unknown keys, and either could be a credential in the wrong place.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBodyLimit(w, r, v, maxBody)
}

// decodeBodyLimit is decodeBody with a body limit of its own.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest(CodeInvalidJSON, "request body must hold exactly one JSON object; found more after byte offset %d",
			dec.InputOffset())
	}
	return nil
}

// jsonError turns a decoding error into an invalid_json error that is safe
// to show.
func jsonError(err error, v any) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
		ve  *valueError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest(CodeInvalidJSON, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(CodeInvalidJSON, "request body ends in the middle of a JSON value")
	case errors.As(err, &se):
		// A syntax error's text names at most one character.
		return badRequest(CodeInvalidJSON, "invalid JSON at byte offset %d: %s", se.Offset,
			strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest(CodeInvalidJSON, "request body must be a JSON object (byte offset %d)", te.Offset)
		}
		return badRequest(CodeInvalidJSON, "field %q must be %s (byte offset %d)",
			te.Field, jsonKind(te.Type), te.Offset)
	case errors.As(err, &ve):
		return badRequest(CodeInvalidJSON, "field \"value\" must be a JSON string")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The unknown key itself is not echoed.
		return badRequest(CodeInvalidJSON, "unknown field in request body; accepted fields: %s",
			strings.Join(jsonFields(reflect.TypeOf(v)), ", "))
	default:
		return badRequest(CodeInvalidJSON, "request body is not valid JSON for this route")
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of type " + t.String()
}

// jsonFields lists the JSON names of struct type t's fields.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// secretBytes is a secret value decoded from a JSON string into a byte
// slice the handler can wipe after sealing; a Go string could not be wiped.
// Other copies (the connection's read buffer, the decoder's) are out of our
// reach, so wiping narrows the window rather than closing it.
type secretBytes []byte

// valueError: the value was not a JSON string. It carries no data.
type valueError struct{}

func (valueError) Error() string { return "value must be a JSON string" }

func (b *secretBytes) UnmarshalJSON(data []byte) error {
	out, ok := unquoteJSON(data)
	if !ok {
		return &valueError{}
	}
	*b = out
	return nil
}

// String never shows the value.
func (b secretBytes) String() string { return fmt.Sprintf("[secret, %d bytes]", len(b)) }

// Format never shows the value: without it %d, %x and %U print the bytes.
func (b secretBytes) Format(f fmt.State, _ rune) { io.WriteString(f, b.String()) }

// LogValue never shows the value: slog's text handler prints a []byte raw.
func (b secretBytes) LogValue() slog.Value { return slog.StringValue(b.String()) }

// MarshalJSON never shows the value: encoding/json would write its base64.
func (b secretBytes) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// unquoteJSON decodes a JSON string literal (already checked by the
// decoder) into a new slice. The output is never longer than the input, so
// it is allocated once and no stray partial copies are left behind. Invalid
// UTF-8 is kept as is, for the caller to refuse; lone surrogates become
// U+FFFD as encoding/json does.
func unquoteJSON(data []byte) ([]byte, bool) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return nil, false
	}
	s := data[1 : len(data)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < 0x20 || c == '"' {
				return nil, false
			}
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			out = append(out, s[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return nil, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := lowSurrogate(s[i:]); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, false
		}
		i += 2
	}
	return out, true
}

func lowSurrogate(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
