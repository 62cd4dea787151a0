package gateway

import (
	"io"
	"net/http"
)

// ScrubPair is a real value and the stand-in that replaces it.
type ScrubPair struct{ Value, StandIn []byte }

// Scrubber removes real secret values from responses (reflection defence):
// the raw value, its URL-encoded form, and its standard and URL-safe base64
// forms at each of the three byte alignments (so a value inside a larger
// base64 blob such as Basic auth is still found) are replaced by the same
// encoding of the stand-in.
type Scrubber struct{}

// NewScrubber returns a Scrubber for pairs. With no pairs it changes nothing.
func NewScrubber(pairs []ScrubPair) *Scrubber { panic("TODO") }

// Header scrubs every header value (and name) in place.
func (s *Scrubber) Header(h http.Header) { panic("TODO") }

// Bytes returns b scrubbed (b itself if nothing matched).
func (s *Scrubber) Bytes(b []byte) []byte { panic("TODO") }

// Reader scrubs a stream without buffering it: each Read returns what the
// source gave as soon as it is known not to start a match; only a tail that
// could be the beginning of a match split across reads is held back (a
// match split across chunks is still caught). Close closes rc.
func (s *Scrubber) Reader(rc io.ReadCloser) io.ReadCloser { panic("TODO") }

// MaxGrowth is how much longer than the input the output can be (stand-ins
// may be longer than values): callers that scrub drop Content-Length.
