package gateway

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/standin/standin/internal/policy"
)

// A rules change reaches the connections already open, not only the next
// ones. Requests on an intercepted flow are judged one by one, but bytes
// on a spliced flow, an upgraded stream (WebSocket) or a response still
// streaming (SSE) were judged once, when they started. So the gateway
// keeps every upstream connection it dialed in a set, and each Invalidate
// judges them again under the sandbox's current rules, with the checks
// the flow and its dial made, and closes those the rules now deny (and
// all of a deleted sandbox). Intercepted flows themselves stay open: their
// next request gets the refusal that says why.

// liveConn is an upstream connection in the gateway's live set. Close
// takes it out of the set.
type liveConn struct {
	net.Conn
	g         *Gateway
	sandboxID string
	host      string     // the name (or IP literal) dialed
	addr      netip.Addr // the address connected to
	// peer is the sandbox's side of a spliced flow, closed with the
	// upstream when the rules deny the flow; nil for pooled connections,
	// whose requests fail on their own when it closes.
	peer io.Closer

	once sync.Once
}

func (c *liveConn) Close() error {
	c.once.Do(func() { c.g.live.Delete(c) })
	return c.Conn.Close()
}

// cut closes a connection the rules now deny, and the sandbox's side of
// it if it is a spliced flow.
func (c *liveConn) cut() {
	c.Close()
	if c.peer != nil {
		c.peer.Close()
	}
}

// rejudgeTimeout bounds reading the store to judge open connections.
const rejudgeTimeout = 10 * time.Second

// track adds c, dialed for host on behalf of sandbox sandboxID under the
// rules of snap, to the live set. A connection dialed under a snapshot
// that an Invalidate already replaced (a request or flow that raced with
// a rules change) is judged at once, since that Invalidate's pass over
// the set may have missed it: if the current rules deny it, c is closed
// and track returns a *DialError saying why.
func (g *Gateway) track(c net.Conn, snap *snapshot, sandboxID, host string, peer io.Closer) (net.Conn, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	lc := &liveConn{Conn: c, g: g, sandboxID: sandboxID, host: host, peer: peer}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		lc.addr = ap.Addr().Unmap()
	}
	g.live.Store(lc, struct{}{})
	if g.ix.whileCurrent(snap, func() {}) {
		return lc, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rejudgeTimeout)
	defer cancel()
	reason := ReasonUnavailable
	if snap, err := g.ix.get(ctx); err == nil {
		reason = g.refusal(snap, lc)
	}
	if reason != "" {
		lc.Close()
		return nil, &DialError{Host: host, Reason: reason, Addr: lc.addr}
	}
	return lc, nil
}

// rejudge closes every live connection that the current rules deny. If
// the rules cannot be read, it closes them all: it fails closed.
func (g *Gateway) rejudge() {
	empty := true
	g.live.Range(func(any, any) bool { empty = false; return false })
	if empty {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rejudgeTimeout)
	defer cancel()
	snap, err := g.ix.get(ctx)
	if err != nil {
		g.logger.Error("judge open connections: closing them all", "reason", ReasonUnavailable, "error", err)
	}
	g.live.Range(func(k, _ any) bool {
		c := k.(*liveConn)
		reason := ReasonUnavailable
		if err == nil {
			reason = g.refusal(snap, c)
		}
		if reason != "" {
			name := "" // a deleted sandbox's name is gone with it
			if err == nil && snap.sandboxes[c.sandboxID] != nil {
				name = snap.sandboxes[c.sandboxID].Name
			}
			g.logger.Info("flow closed", "reason", ReasonRulesChanged, "decision", reason,
				"sandbox", name, "sandbox_id", c.sandboxID, "host", c.host)
			c.cut()
		}
		return true
	})
}

// refusal says why the rules in snap do not let c stay open, or returns
// "" if they do: the flow's check (its sandbox, and the name or address
// it was opened for), then the dial's (the address connected to).
func (g *Gateway) refusal(snap *snapshot, c *liveConn) string {
	sb := snap.sandboxes[c.sandboxID]
	if sb == nil {
		return ReasonUnknownSB
	}
	dest := policy.Dest{Host: c.host}
	if a, err := netip.ParseAddr(c.host); err == nil {
		dest = policy.Dest{Addr: a.Unmap()}
	}
	if !sb.Rules.Decide(dest).Allow {
		return ReasonRuleDenied
	}
	return g.cfg.Dialer.refusal(c.host, c.addr, sb.Rules)
}
