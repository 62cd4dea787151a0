package gateway

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func BenchmarkScrubReader16(b *testing.B) {
	var pairs []ScrubPair
	for i := range 16 {
		pairs = append(pairs, ScrubPair{Value: []byte(fmt.Sprintf("sk-%02d-R3alV4lue/AbCdEf+GhIjKlMnOpQ", i)), StandIn: []byte(fmt.Sprintf("sk-%02d-St4ndInZyXwVuTsRqPoNmLkJiHgF", i))})
	}
	s := NewScrubber(pairs)
	b.Logf("%d patterns", len(s.pats))
	data := scrubText(10<<20, 100000, []byte(scrubValue), 2)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		io.Copy(io.Discard, s.Reader(io.NopCloser(bytes.NewReader(data))))
	}
}
