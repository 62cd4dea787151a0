package vault

import (
	"bytes"
	"fmt"
	"testing"
)

var benchSizes = []int{64, 8 << 10}

func BenchmarkSeal(b *testing.B) {
	vt := New(newTestKeyring(b, 1), nil) // crypto/rand, as in production
	for _, size := range benchSizes {
		v := NewValue(bytes.Repeat([]byte{'v'}, size))
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := vt.Seal("sec_bench", 1, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnseal(b *testing.B) {
	vt := New(newTestKeyring(b, 1), nil)
	for _, size := range benchSizes {
		blob := mustSeal(b, vt, "sec_bench", 1, string(bytes.Repeat([]byte{'v'}, size)))
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := vt.Unseal("sec_bench", 1, blob); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
