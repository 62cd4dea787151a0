package gateway

import (
	"net/http"

	"github.com/standin/standin/client"
)

// TokenIn returns the credential a request carries in slot, if any:
// the {value} part of a header template, the token of "Bearer <token>"
// (scheme case-insensitive), the password (or user, per SecretIn) of Basic
// auth, or the query parameter. Several values of one header or parameter:
// ok is false and multiple is true (the gateway refuses such requests on a
// secret host, since which one the upstream reads is ambiguous).
func TokenIn(r *http.Request, slot client.AuthSlot) (token string, ok, multiple bool) { panic("TODO") }

// SetToken writes value into slot of r in place of the token TokenIn found,
// keeping everything else of that header or query byte for byte (e.g. the
// Basic user name). It touches no other header, the body, or the path.
func SetToken(r *http.Request, slot client.AuthSlot, value []byte) error { panic("TODO") }
