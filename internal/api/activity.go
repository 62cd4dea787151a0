package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/standin/standin/client"
	"github.com/standin/standin/internal/store"
)

// Activity page sizes; the store's own maximum is the same.
const (
	defaultActivityLimit = 100
	maxActivityLimit     = 1000
)

// activityParams are the accepted query parameters, in the order error
// messages list them.
var activityParams = []string{"sandbox", "status", "since", "until", "cursor", "limit", "after"}

// cursorPrefix versions the cursor format. A cursor is opaque to clients:
// base64url of prefix + the last id on the page.
const cursorPrefix = "c1."

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}

// parseActivityQuery reads the query string. Messages state the accepted
// form; they do not echo what was sent.
func parseActivityQuery(v url.Values) (q store.ActivityQuery, limit int, follow bool, err error) {
	for k, vs := range v {
		if !slices.Contains(activityParams, k) {
			return q, 0, false, badRequest(CodeInvalidQuery, "unknown query parameter; accepted: %s", strings.Join(activityParams, ", "))
		}
		if len(vs) > 1 {
			return q, 0, false, badRequest(CodeInvalidQuery, "query parameter %q given %d times; give it once", k, len(vs))
		}
	}
	if sb := v.Get("sandbox"); sb != "" {
		if !nameRE.MatchString(sb) {
			return q, 0, false, badRequest(CodeInvalidQuery, "sandbox must be a sandbox name: %s", nameRule)
		}
		q.SandboxName = sb
	}
	if st := v.Get("status"); st != "" {
		if len(st) != 3 || st[0] < '1' || st[0] > '5' || strings.ToLower(st[1:]) != "xx" {
			return q, 0, false, badRequest(CodeInvalidQuery, "status must be a class: 2xx, 4xx or 5xx (1xx and 3xx work too)")
		}
		q.StatusClass = int(st[0] - '0')
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, 0, false, badRequest(CodeInvalidQuery, "%s must be an RFC 3339 time such as 2025-01-02T15:04:05Z", p.name)
		}
		*p.t = t
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, 0, false, badRequest(CodeInvalidQuery, "since must be before until")
	}
	limit = defaultActivityLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxActivityLimit {
			return q, 0, false, badRequest(CodeInvalidQuery, "limit must be a whole number from 1 to %d", maxActivityLimit)
		}
		limit = n
	}
	c, a := v.Get("cursor"), v.Get("after")
	if c != "" && a != "" {
		return q, 0, false, badRequest(CodeInvalidQuery, "give cursor (older pages) or after (newer records), not both")
	}
	if c != "" {
		id, ok := decodeCursor(c)
		if !ok {
			return q, 0, false, badRequest(CodeInvalidQuery, "cursor is not one this server made; pass nextCursor from the previous page unchanged")
		}
		q.Before = id
	}
	if a != "" {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id < 0 {
			return q, 0, false, badRequest(CodeInvalidQuery, "after must be an activity id (a whole number) from an earlier response")
		}
		q.After = id
		follow = true
	}
	return q, limit, follow, nil
}

// secretActivity pages through a secret's activity: newest first with
// cursor, or oldest first after an id for --follow polling.
func (s *Server) secretActivity(w http.ResponseWriter, r *http.Request) error {
	sec, err := s.secretByName(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	q, limit, follow, err := parseActivityQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q.SecretID = sec.ID
	// One record more than asked tells whether another page exists.
	q.Limit = min(limit+1, maxActivityLimit)
	recs, err := s.Store.ListActivity(r.Context(), q)
	if err != nil {
		return fmt.Errorf("list activity: %w", err)
	}
	more := len(recs) > limit || (len(recs) == limit && limit == maxActivityLimit)
	if len(recs) > limit {
		recs = recs[:limit]
	}
	if follow && q.After == 0 {
		// after=0 starts following: the store reads 0 as "newest first",
		// so this is the latest page, turned round to oldest first.
		slices.Reverse(recs)
	}
	page := client.ActivityPage{Items: make([]client.Activity, 0, len(recs))}
	for _, a := range recs {
		page.Items = append(page.Items, activityOut(a))
	}
	// Following returns records oldest first and the caller continues from
	// the last id; only newest-first pages have a cursor.
	if more && !follow && len(recs) > 0 {
		page.NextCursor = encodeCursor(recs[len(recs)-1].ID)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func activityOut(a store.Activity) client.Activity {
	return client.Activity{
		ID: strconv.FormatInt(a.ID, 10), Time: a.Time, Secret: a.SecretName, Sandbox: a.SandboxName,
		Method: a.Method, Host: a.Host, Path: a.Path, Status: a.Status, UpstreamStatus: a.UpstreamStatus,
		LatencyMS: float64(a.Latency) / float64(time.Millisecond), BytesIn: a.BytesIn, BytesOut: a.BytesOut,
		Outcome: a.Outcome, Reason: a.Reason,
	}
}
