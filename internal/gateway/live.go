package gateway

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/standin/standin/internal/policy"
)

// A rules change or a revocation reaches what is already open, not only
// what comes next. Requests on an intercepted flow are judged one by one,
// but bytes on a spliced flow, an upgraded stream (WebSocket) or a
// response still streaming (SSE) were judged once, when they started. So
// the gateway keeps two live sets, and each Invalidate judges them again:
//
//   - every upstream connection it dialed, under the sandbox's current
//     rules, with the checks the flow and its dial made: those the rules
//     now deny (and all of a deleted sandbox) are closed;
//   - every request in flight that carried a real value: one whose
//     binding is gone (detach, secret delete) is cut, so a stream or a
//     WebSocket session does not outlive the credential that opened it;
//     so is one the rules now deny, first, so that its record says why.
//
// Intercepted flows themselves stay open: their next request gets the
// refusal that says why. A rotation cuts nothing: the binding stays.

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

// liveRequest is a request in flight that carried real values.
type liveRequest struct {
	sandboxID string
	host      string    // the name (or IP literal) it went to
	st        *reqState // st.used: the bindings whose values it carried
	cancel    context.CancelFunc
}

// trackRequest adds a request that swapped in the values of st.used,
// judged under snap, to the live set; untrackRequest takes it out. It
// returns the context the request must go upstream with: cancelled when a
// revocation cuts it. A request whose snapshot an Invalidate already
// replaced is judged again at once: if its bindings are gone (or the
// store cannot say), lr is nil, refused says why (ReasonRevoked or
// ReasonUnavailable), and it must not go out.
func (g *Gateway) trackRequest(ctx context.Context, snap *snapshot, sandboxID, host string, st *reqState) (_ context.Context, lr *liveRequest, refused string) {
	lr = &liveRequest{sandboxID: sandboxID, host: host, st: st}
	ctx, lr.cancel = context.WithCancel(ctx)
	g.reqs.Store(lr, struct{}{})
	if g.ix.whileCurrent(snap, func() {}) {
		return ctx, lr, ""
	}
	rctx, cancel := context.WithTimeout(context.Background(), rejudgeTimeout)
	defer cancel()
	fresh, err := g.ix.get(rctx)
	switch {
	case err != nil:
		refused = ReasonUnavailable
	case !fresh.holds(lr):
		refused = ReasonRevoked
	default:
		return ctx, lr, ""
	}
	g.untrackRequest(lr)
	return nil, nil, refused
}

// untrackRequest takes a request that is done out of the live set.
func (g *Gateway) untrackRequest(lr *liveRequest) {
	g.reqs.Delete(lr)
	lr.cancel()
}

// holds reports whether every binding lr carried is still its sandbox's.
func (snap *snapshot) holds(lr *liveRequest) bool {
	sb := snap.sandboxes[lr.sandboxID]
	if sb == nil {
		return false
	}
	for _, u := range lr.st.used {
		if !slices.ContainsFunc(sb.bindings, func(b *bindingInfo) bool { return b.ID == u.ID }) {
			return false
		}
	}
	return true
}

// cut ends a request for reason: its context is cancelled and, if it was
// upgraded (a WebSocket holds its connection alone), its upstream
// connection closed at once, so that nothing the sandbox sends after the
// API answered reaches the upstream.
func (lr *liveRequest) cut(reason string) {
	lr.st.cutBy.Store(&reason)
	if c := lr.st.upgraded.Load(); c != nil {
		(*c).Close()
	}
	lr.cancel()
}

// rejudge closes every live connection that the current rules deny, and
// cuts every request in flight whose credential was revoked. If the store
// cannot be read, it closes and cuts them all: it fails closed.
func (g *Gateway) rejudge() {
	empty := true
	g.live.Range(func(any, any) bool { empty = false; return false })
	g.reqs.Range(func(any, any) bool { empty = false; return false })
	if empty {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rejudgeTimeout)
	defer cancel()
	snap, err := g.ix.get(ctx)
	if err != nil {
		g.logger.Error("judge open connections: closing them all", "reason", ReasonUnavailable, "error", err)
	}
	// The connections are judged first, and closed last: a request on a
	// connection the rules now deny is cut first, so that its record
	// says why rather than only that its response was cut short.
	type denied struct {
		c      *liveConn
		reason string
	}
	var closing []denied
	hosts := map[string]bool{} // sandbox id + "\x00" + host of the denied
	g.live.Range(func(k, _ any) bool {
		c := k.(*liveConn)
		reason := ReasonUnavailable
		if err == nil {
			reason = g.refusal(snap, c)
		}
		if reason != "" {
			closing = append(closing, denied{c, reason})
			hosts[c.sandboxID+"\x00"+c.host] = true
		}
		return true
	})
	g.reqs.Range(func(k, _ any) bool {
		lr := k.(*liveRequest)
		reason := ReasonUnavailable
		if err == nil {
			reason = g.requestRefusal(snap, lr)
		}
		if reason == "" && hosts[lr.sandboxID+"\x00"+lr.host] {
			reason = ReasonRulesChanged
		}
		if reason != "" {
			g.logger.Info("request cut", "reason", reason, "sandbox", sandboxName(snap, lr.sandboxID),
				"sandbox_id", lr.sandboxID, "host", lr.host)
			lr.cut(reason)
		}
		return true
	})
	for _, d := range closing {
		g.logger.Info("flow closed", "reason", ReasonRulesChanged, "decision", d.reason,
			"sandbox", sandboxName(snap, d.c.sandboxID), "sandbox_id", d.c.sandboxID, "host", d.c.host)
		d.c.cut()
	}
}

// sandboxName is the name of sandbox id in snap, "" if snap is nil or the
// sandbox is gone (deleted: its name went with it).
func sandboxName(snap *snapshot, id string) string {
	if snap == nil || snap.sandboxes[id] == nil {
		return ""
	}
	return snap.sandboxes[id].Name
}

// requestRefusal says why snap does not let lr go on, or returns "": its
// bindings must all still be its sandbox's (else ReasonCutRevoked), and
// the rules must still allow its host (else ReasonRulesChanged; the
// address it went to is judged with its connection).
func (g *Gateway) requestRefusal(snap *snapshot, lr *liveRequest) string {
	if !snap.holds(lr) {
		return ReasonCutRevoked
	}
	if g.flowRefusal(snap, lr.sandboxID, lr.host, netip.Addr{}) != "" {
		return ReasonRulesChanged
	}
	return ""
}

// refusal says why the rules in snap do not let c stay open, or returns
// "" if they do.
func (g *Gateway) refusal(snap *snapshot, c *liveConn) string {
	return g.flowRefusal(snap, c.sandboxID, c.host, c.addr)
}

// flowRefusal says why the rules in snap do not let sandbox sandboxID
// keep a flow to host, connected to addr, or returns "" if they do: the
// flow's check (its sandbox, and the name or address it was opened for),
// then the dial's (the address connected to; skipped if addr is not
// known yet).
func (g *Gateway) flowRefusal(snap *snapshot, sandboxID, host string, addr netip.Addr) string {
	sb := snap.sandboxes[sandboxID]
	if sb == nil {
		return ReasonUnknownSB
	}
	dest := policy.Dest{Host: host}
	if a, err := netip.ParseAddr(host); err == nil {
		dest = policy.Dest{Addr: a.Unmap()}
	}
	if !sb.Rules.Decide(dest).Allow {
		return ReasonRuleDenied
	}
	if !addr.IsValid() {
		return ""
	}
	return g.cfg.Dialer.refusal(host, addr, sb.Rules)
}
