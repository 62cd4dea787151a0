package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeLog is a net.Conn that records each Write it gets.
type writeLog struct {
	net.Conn
	writes []string
	err    error
}

func (w *writeLog) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestBatchConn(t *testing.T) {
	big := string(bytes.Repeat([]byte{'x'}, batchMax))
	tests := []struct {
		name string
		run  func(b *batchConn)
		want []string
	}{
		{name: "no hold writes at once", run: func(b *batchConn) {
			b.Write([]byte("a"))
			b.Write([]byte("b"))
		}, want: []string{"a", "b"}},
		{name: "held writes go out as one at release", run: func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.Write([]byte("b"))
			b.release()
			b.Write([]byte("c"))
		}, want: []string{"ab", "c"}},
		{name: "nested holds write at the last release", run: func(b *batchConn) {
			b.hold()
			b.Write([]byte("a"))
			b.hold()
			b.Write([]byte("b"))
			b.release()
			b.Write([]byte("c"))
			b.release()
		}, want: []string{"abc"}},
		{name: "a full batch goes out before release", run: func(b *batchConn) {
			b.hold()
			b.Write([]byte(big))
			b.Write([]byte("z"))
			b.release()
		}, want: []string{big, "z"}},
		{name: "release with nothing held writes nothing", run: func(b *batchConn) {
			b.hold()
			b.release()
		}, want: nil},
		{name: "nil batch holds nothing", run: func(*batchConn) {
			var nb *batchConn
			nb.hold()
			if err := nb.release(); err != nil {
				t.Errorf("release() = %v, want nil", err)
			}
		}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wl := &writeLog{}
			b := &batchConn{Conn: wl}
			tt.run(b)
			if diff := cmp.Diff(tt.want, wl.writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBatchConnError: a failed write fails the release and every later
// write, rather than dropping bytes from the middle of a stream.
func TestBatchConnError(t *testing.T) {
	errBroken := errors.New("broken pipe")
	wl := &writeLog{err: errBroken}
	b := &batchConn{Conn: wl}
	b.hold()
	if n, err := b.Write([]byte("a")); n != 1 || err != nil {
		t.Errorf("held Write = %d, %v; want 1, nil", n, err)
	}
	if err := b.release(); !errors.Is(err, errBroken) {
		t.Errorf("release() = %v, want %v", err, errBroken)
	}
	wl.err = nil
	if _, err := b.Write([]byte("b")); !errors.Is(err, errBroken) {
		t.Errorf("Write after a failed release = %v, want %v", err, errBroken)
	}
	if len(wl.writes) != 0 {
		t.Errorf("writes after the failure: %q", wl.writes)
	}
}

// chunkConn is a net.Conn whose reads return the chunks in order, then err.
type chunkConn struct {
	net.Conn
	chunks [][]byte
	err    error
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, c.err
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
		if len(c.chunks) == 0 && c.err != nil {
			return n, c.err
		}
	}
	return n, nil
}

// TestReadAheadConn: whatever the read sizes, every byte comes out once
// and in order, the error only after them, and no buffer is held between
// reads once the data stops flowing.
func TestReadAheadConn(t *testing.T) {
	var chunks [][]byte
	var want []byte
	for i, n := range []int{10, readAheadSize, readAheadSize, 3, 2 * readAheadSize, 5000, readAheadSize + 1, 1} {
		c := bytes.Repeat([]byte{byte('a' + i)}, n)
		chunks = append(chunks, c)
		want = append(want, c...)
	}
	for _, size := range []int{1, 100, 16 << 10, readAheadSize, 3 * readAheadSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			src := &chunkConn{err: io.EOF}
			for _, c := range chunks {
				src.chunks = append(src.chunks, append([]byte(nil), c...))
			}
			c := &readAheadConn{Conn: src}
			var got []byte
			p := make([]byte, size)
			for {
				n, err := c.Read(p)
				got = append(got, p[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, want %d, or not the same", len(got), len(want))
			}
			if c.pooled != nil {
				t.Errorf("buffer still held after the end")
			}
		})
	}
}
