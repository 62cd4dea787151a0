package netstack

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tunLink is a stack.LinkEndpoint on a TUN descriptor opened with
// IFF_TUN|IFF_NO_PI, where one read or write is one IP packet. It also
// filters what the sandbox sends (see allowed).
//
// It stands in for gVisor's fdbased endpoint, which at the pinned version
// never closes the eventfd it creates per endpoint (and creates it without
// O_CLOEXEC): a daemon that runs many sandboxes would leak one descriptor per
// sandbox, into itself and every child it starts. Here the descriptor is a
// non-blocking *os.File on Go's poller, so a read deadline stops the reader
// and Close releases everything.
type tunLink struct {
	f   *os.File
	rc  syscall.RawConn
	mtu atomic.Uint32
	dns tcpip.Address // the resolver address; UDP to anywhere else is dropped

	dropped atomic.Uint64

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	wg         sync.WaitGroup // the reader
	closeOnce  sync.Once
}

var _ stack.LinkEndpoint = (*tunLink)(nil)

// newTUNLink takes ownership of fd, which it makes non-blocking.
func newTUNLink(fd int, mtu uint32, dns tcpip.Address) (*tunLink, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set tun non-blocking: %w", err)
	}
	// NewFile sees the non-blocking descriptor and registers it with the
	// poller.
	f := os.NewFile(uintptr(fd), "tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun descriptor: %w", err)
	}
	l := &tunLink{f: f, rc: rc, dns: dns}
	l.mtu.Store(mtu)
	return l, nil
}

// readLoop hands each packet read from the TUN device to d until the read
// deadline set by Attach(nil) or Close stops it.
func (l *tunLink) readLoop(d stack.NetworkDispatcher) {
	defer l.wg.Done()
	// One reused buffer; each packet is copied out at its own size, so a
	// small packet sitting in a receive queue does not pin 64 KB.
	buf := make([]byte, 65535)
	for {
		n, err := l.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return
			}
			// EIO and friends mean the device is gone; nothing more will
			// come from it.
			return
		}
		b := buf[:n]
		proto, ok := l.allowed(b)
		if !ok {
			l.dropped.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
			Payload: buffer.MakeWithData(b),
		})
		d.DeliverNetworkPacket(proto, pkt)
		pkt.DecRef()
	}
}

// allowed reports whether the sandbox may send packet b, and its network
// protocol. Only IPv4 is let through, and of it only TCP (to anywhere: the
// TCP callback decides) and unfragmented UDP to the resolver's port 53.
// ICMP in particular never reaches the stack, which would otherwise answer
// echo requests for any address.
func (l *tunLink) allowed(b []byte) (tcpip.NetworkProtocolNumber, bool) {
	if len(b) < header.IPv4MinimumSize || header.IPVersion(b) != header.IPv4Version {
		return 0, false
	}
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) {
		return 0, false
	}
	switch ip.TransportProtocol() {
	case header.TCPProtocolNumber:
		return header.IPv4ProtocolNumber, true
	case header.UDPProtocolNumber:
		// A DNS query is never fragmented; refusing fragments means the
		// port check below always sees the UDP header.
		if ip.DestinationAddress() != l.dns || ip.More() || ip.FragmentOffset() != 0 {
			return 0, false
		}
		hl := int(ip.HeaderLength())
		if len(b) < hl+header.UDPMinimumSize {
			return 0, false
		}
		return header.IPv4ProtocolNumber, header.UDP(b[hl:]).DestinationPort() == DNSPort
	default:
		return 0, false
	}
}

// WritePackets implements stack.LinkWriter: each packet is one writev.
func (l *tunLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	sent := 0
	for _, pkt := range pkts.AsSlice() {
		var werr error
		err := l.rc.Write(func(fd uintptr) bool {
			_, werr = unix.Writev(int(fd), pkt.AsSlices())
			// Never wait for writability: like a NIC with a full
			// queue, drop and let TCP retransmit.
			return true
		})
		if err == nil {
			err = werr
		}
		switch {
		case err == nil:
			sent++
		case errors.Is(err, unix.EAGAIN):
			return sent, &tcpip.ErrWouldBlock{}
		case errors.Is(err, os.ErrClosed):
			return sent, &tcpip.ErrClosedForSend{}
		default:
			return sent, &tcpip.ErrAborted{}
		}
	}
	return sent, nil
}

// Attach implements stack.NetworkLinkEndpoint. A nil dispatcher (the NIC
// is being removed) stops the reader.
func (l *tunLink) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d == nil {
		if l.dispatcher != nil {
			l.f.SetReadDeadline(time.Unix(1, 0))
			l.dispatcher = nil
		}
		return
	}
	if l.dispatcher == nil {
		l.dispatcher = d
		l.wg.Add(1)
		go l.readLoop(d)
	}
}

// IsAttached implements stack.NetworkLinkEndpoint.
func (l *tunLink) IsAttached() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.dispatcher != nil
}

// Wait implements stack.NetworkLinkEndpoint: it waits for the reader to stop.
func (l *tunLink) Wait() { l.wg.Wait() }

// Close implements stack.NetworkLinkEndpoint. The stack calls it once the
// NIC is removed; Stack.Close calls it again in case the NIC never was added.
func (l *tunLink) Close() {
	l.closeOnce.Do(func() {
		l.f.SetReadDeadline(time.Unix(1, 0))
		l.wg.Wait()
		l.f.Close()
	})
}

// MTU implements stack.NetworkLinkEndpoint.
func (l *tunLink) MTU() uint32 { return l.mtu.Load() }

// SetMTU implements stack.NetworkLinkEndpoint.
func (l *tunLink) SetMTU(mtu uint32) { l.mtu.Store(mtu) }

// Capabilities implements stack.NetworkLinkEndpoint. The kernel on the other
// side of the TUN device computed these packets' checksums itself (the
// device offers it no offload), so verifying them again would only cost a
// pass over every byte; a sandbox that sends a bad checksum on purpose only
// corrupts its own data. Outgoing checksums are still computed: the kernel
// checks them.
func (l *tunLink) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// MaxHeaderLength implements stack.NetworkLinkEndpoint: no link header.
func (*tunLink) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.NetworkLinkEndpoint: TUN has none.
func (*tunLink) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.NetworkLinkEndpoint.
func (*tunLink) SetLinkAddress(tcpip.LinkAddress) {}

// ARPHardwareType implements stack.NetworkLinkEndpoint.
func (*tunLink) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.NetworkLinkEndpoint: no link header.
func (*tunLink) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.NetworkLinkEndpoint: no link header.
func (*tunLink) ParseHeader(*stack.PacketBuffer) bool { return true }

// SetOnCloseAction implements stack.NetworkLinkEndpoint.
func (*tunLink) SetOnCloseAction(func()) {}
