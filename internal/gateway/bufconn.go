package gateway

import (
	"net"
	"sync"
)

// This file holds the socket-side buffering of the gateway's two legs:
// batchConn gathers the TLS records written to the sandbox, readAheadConn
// reads ahead from the upstream.

// batchConn is the TCP side of an intercepted TLS flow. Between hold and
// release its writes are gathered and go out as one: crypto/tls writes
// every record (16 KiB at most) with a write of its own, and each costs a
// system call plus, on loopback or a TUN device, the receiver's processing
// and wakeup. A response body copied in 64 KiB pieces then costs one write
// per piece instead of four.
//
// Nothing stays gathered past release, so streaming is unchanged: a
// flushed event still leaves at once. Writes outside a hold (handshake,
// flushes, alerts, other goroutines) go straight out, after anything
// gathered, so the byte order is the order of the writes.
type batchConn struct {
	net.Conn

	mu     sync.Mutex
	depth  int
	pooled *[]byte
	buf    []byte
	err    error // first write error; later writes fail with it
}

// batchMax is how much is gathered before a write goes out anyway: a whole
// copy buffer with its records' overhead, and the response head or a
// piece net/http's buffer split off, fits.
const batchMax = copyBufSize + 16<<10

// batchBufs are the gathering buffers, taken on the first gathered write
// and given back at release: an idle connection holds none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchMax+maxRecord); return &b }}

// maxRecord is the most one TLS record adds to a batch (16 KiB of data plus
// header, padding and tag), so a batch under batchMax never reallocates.
const maxRecord = 16<<10 + 256

// hold starts (or nests) gathering. A nil batchConn does nothing.
func (b *batchConn) hold() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.depth++
	b.mu.Unlock()
}

// release ends a hold; the last one writes what was gathered. It returns
// the write's error.
func (b *batchConn) release() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.depth--
	if b.depth > 0 {
		return nil
	}
	err := b.flushLocked()
	if b.pooled != nil {
		*b.pooled = b.buf[:0]
		batchBufs.Put(b.pooled)
		b.pooled, b.buf = nil, nil
	}
	return err
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.depth == 0 {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		n, err := b.Conn.Write(p)
		if err != nil {
			b.err = err
		}
		return n, err
	}
	if b.pooled == nil {
		b.pooled = batchBufs.Get().(*[]byte)
		b.buf = (*b.pooled)[:0]
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchMax {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (b *batchConn) flushLocked() error {
	if b.err != nil {
		return b.err
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// readAheadConn is an upstream connection that reads ahead while data is
// flowing. crypto/tls reads the socket into a buffer about one or two
// records large, so a download costs a read system call (and often a
// wakeup) per 30 KiB or so; reading 64 KiB at a time while the socket has
// that much waiting roughly halves them. An idle connection (its read
// loop blocked, waiting for the next response) holds no buffer: after a
// read that did not fill its buffer, the next read goes straight into the
// caller's.
type readAheadConn struct {
	net.Conn

	pooled *[]byte
	ahead  []byte // read but not yet returned; aliases *pooled
	err    error  // the read error that came with ahead, returned after it
	bulk   bool   // the last read filled its buffer: more is likely waiting
}

// readAheadSize is the read-ahead buffer's size.
const readAheadSize = 64 << 10

var readAheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// Read is called by one goroutine at a time (crypto/tls reads under its
// input lock).
func (c *readAheadConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		if len(c.ahead) > 0 {
			return n, nil
		}
		c.putBuf()
		err := c.err
		c.err = nil
		return n, err
	}
	if !c.bulk || len(p) >= readAheadSize {
		n, err := c.Conn.Read(p)
		c.bulk = n == len(p)
		return n, err
	}
	c.pooled = readAheadBufs.Get().(*[]byte)
	buf := *c.pooled
	n, err := c.Conn.Read(buf)
	c.bulk = n == len(buf)
	m := copy(p, buf[:n])
	if m < n {
		c.ahead, c.err = buf[m:n], err
		return m, nil
	}
	c.putBuf()
	return m, err
}

func (c *readAheadConn) putBuf() {
	readAheadBufs.Put(c.pooled)
	c.pooled, c.ahead = nil, nil
}
