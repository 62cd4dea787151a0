package api

import (
	"context"
	"encoding/base32"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Log attribute keys. The request line carries these and nothing else: no
// bodies, no headers, no path (a path can hold a mistyped value), only the
// route pattern.
const (
	logKeyMethod    = "method"
	logKeyRoute     = "route"
	logKeyStatus    = "status"
	logKeyDuration  = "duration"
	logKeyRequestID = "request_id"
	logKeyError     = "error"
	logKeySandboxID = "sandbox_id"
)

// reqInfo is what the middleware knows about a request.
type reqInfo struct {
	id    string
	route string
}

type reqInfoKey struct{}

func withReqInfo(ctx context.Context, ri *reqInfo) context.Context {
	return context.WithValue(ctx, reqInfoKey{}, ri)
}

func requestID(r *http.Request) string {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return ri.id
	}
	return "req_unknown"
}

func routeOf(r *http.Request) string {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return routeLabel(ri.route)
	}
	return routeLabel(r.Pattern)
}

// idEncoding is lowercase base32 without padding: ids stay URL- and
// shell-safe and case-insensitive.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix followed by n random bytes from r.
func newID(r io.Reader, prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("read random id: %w", err)
	}
	return prefix + strings.ToLower(idEncoding.EncodeToString(b)), nil
}
