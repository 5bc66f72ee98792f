package localcache

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sharednothing/sharednothing/internal/conditional"
	"github.com/sharednothing/sharednothing/internal/hook"
	"github.com/sharednothing/sharednothing/internal/httperr"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

var (
	hitValue         = []string{"HIT"}
	missValue        = []string{"MISS"}
	staleValue       = []string{"STALE"}
	revalidatedValue = []string{"REVALIDATED"}
)

// noDirectives is the parsed form of a request without Cache-Control.
var noDirectives = newDirectives()

// Handler returns next wrapped by the cache. GET and HEAD requests are
// answered from stored responses when a usable one exists (X-Cache: HIT,
// or STALE under stale-while-revalidate, stale-if-error or max-stale); a
// stale one with validators is revalidated with a conditional request
// through next (X-Cache: REVALIDATED when next answers 304); otherwise next
// runs (X-Cache: MISS) and its response is stored if RFC 9111 and the
// rules of [ResponseCache] allow. Identical concurrent misses, and
// identical concurrent revalidations, run next once. A successful unsafe
// request (POST, PUT, PATCH, DELETE) removes what is stored for its URL.
//
// Conditional requests (If-None-Match, If-Modified-Since) and single byte
// ranges are answered from stored responses. A request carrying
// Cache-Control: only-if-cached that cannot be answered gets 504.
func (rc *ResponseCache) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("localcache: Handler: next must not be nil")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.serveHTTP(w, r, next)
	})
}

// use says how a stored response may answer a request.
type use int

const (
	useNone       use = iota // not at all
	useFresh                 // as is
	useStale                 // as is, though stale (max-stale)
	useStaleAsync            // as is, and refresh it in the background
	useValidate              // after asking next (conditional request)
)

func (rc *ResponseCache) serveHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rc.counts.passes.Add(1)
		rc.invalidateAfter(w, r, next)
		return
	}
	rq := &noDirectives
	if cc := r.Header["Cache-Control"]; len(cc) > 0 {
		d := parseCacheControl(cc)
		rq = &d
	}
	key := rc.key(r)
	if st := reqstate.From(r.Context()); st != nil {
		if s := st.Snapshot(); s.Bypass || reqstate.Carries(r, s.Cookies, reqstate.Pin) {
			rc.counts.passes.Add(1)
			rc.fetch(w, r, next, key, rq, nil)
			return
		}
	}
	now := time.Now()
	variants, pass := rc.store.get(key, now)
	resp, refused := choose(variants, r)
	how := useNone
	if resp != nil {
		how = rc.usable(resp, rq, now)
		switch how {
		case useFresh:
			rc.counts.hits.Add(1)
			rc.serve(w, r, resp, now, hitValue)
			return
		case useStale:
			rc.counts.stale.Add(1)
			rc.serve(w, r, resp, now, staleValue)
			return
		case useStaleAsync:
			rc.counts.stale.Add(1)
			rc.refreshInBackground(r, next, key, resp)
			rc.serve(w, r, resp, now, staleValue)
			return
		}
	}
	if rq.onlyIfCached {
		rc.counts.misses.Add(1)
		w.Header()["X-Cache"] = missValue
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	switch {
	case refused:
		// An entry exists that this client must not get (it carries a pin
		// or a session cookie the entry excludes): read through alone.
		rc.counts.passes.Add(1)
		rc.fetch(w, r, next, key, rq, nil)
	case how == useValidate && r.Method == http.MethodGet:
		rc.revalidate(w, r, next, key, rq, resp)
	case r.Method == http.MethodHead || pass || len(r.Header["Authorization"]) > 0 || len(r.Header["Range"]) > 0:
		// HEAD has no body to store; an authorized response is per-user
		// until it says otherwise; a Range miss passes through whole; the
		// URL's last response was not storable: none is coalesced.
		rc.count(rc.fetch(w, r, next, key, rq, nil))
	default:
		rc.coalesce(w, r, next, key, rq)
	}
}

// choose returns the newest stored response whose Vary'd request headers
// match r and that r may be answered with. refused is true when a
// matching response exists but r's cookies rule it out.
func choose(variants []*response, r *http.Request) (resp *response, refused bool) {
	for _, v := range variants {
		if v.varyKey != variantKey(v.vary, r.Header) {
			continue
		}
		if len(r.Header["Authorization"]) > 0 && !v.authOK {
			continue
		}
		if len(v.cookies) > 0 {
			kinds := []reqstate.Kind{reqstate.Pin}
			if v.anonOnly {
				kinds = append(kinds, reqstate.Session)
			}
			if reqstate.Carries(r, v.cookies, kinds...) {
				return nil, true
			}
		}
		return v, false
	}
	return nil, false
}

// usable decides how resp may answer a request with directives rq
// (RFC 9111 §4.2, §5.2.1; RFC 5861).
func (rc *ResponseCache) usable(resp *response, rq *directives, now time.Time) use {
	validatable := resp.etag != "" || !resp.modified.IsZero()
	age := resp.age(now)
	left := resp.lifetime - age
	switch {
	case resp.noCache || rq.noCache,
		rq.maxAge >= 0 && age > rq.maxAge,
		rq.minFresh >= 0 && left < rq.minFresh:
		if validatable {
			return useValidate
		}
		return useNone
	case left > 0:
		return useFresh
	}
	staleness := -left
	if !resp.noStale {
		if (rq.maxStaleAny || rq.maxStale >= 0) && staleness <= min(rq.maxStale, rc.maxStale) ||
			rq.maxStaleAny && staleness <= rc.maxStale {
			return useStale
		}
		if resp.staleWhile > 0 && staleness <= resp.staleWhile && rc.bgCtx.Err() == nil {
			return useStaleAsync
		}
		if resp.staleIf > 0 && staleness <= resp.staleIf {
			return useValidate // a full or conditional request, stale if it fails
		}
	}
	if validatable {
		return useValidate
	}
	return useNone
}

// ageValue formats an Age field value.
func ageValue(d time.Duration) []string {
	return []string{strconv.FormatInt(int64(d/time.Second), 10)}
}

// serve writes a stored response: as a 304 or 412 if r's preconditions
// say so, as a 206 for a satisfiable single byte range, else whole.
func (rc *ResponseCache) serve(w http.ResponseWriter, r *http.Request, resp *response, now time.Time, xcache []string) {
	h := w.Header()
	if resp.status >= 200 && resp.status < 300 {
		switch conditional.Evaluate(r, resp.etag, resp.modified) {
		case conditional.NotModified:
			for _, k := range [...]string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Last-Modified"} {
				if v, ok := resp.header[k]; ok {
					h[k] = v
				}
			}
			h["Age"] = ageValue(resp.age(now))
			h["X-Cache"] = xcache
			w.WriteHeader(http.StatusNotModified)
			return
		case conditional.PreconditionFailed:
			h["X-Cache"] = xcache
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
	}
	for k, v := range resp.header {
		h[k] = v
	}
	h["Age"] = ageValue(resp.age(now))
	h["X-Cache"] = xcache
	if resp.status == http.StatusOK && len(r.Header["Range"]) > 0 && conditional.IfRange(r, resp.etag, resp.modified) {
		if serveRange(w, r, resp) {
			return
		}
	}
	w.WriteHeader(resp.status)
	if r.Method != http.MethodHead {
		w.Write(resp.body)
	}
}

// outcome is what a handler run turned into.
type outcome int

const (
	fetched      outcome = iota // next's response went to the client
	revalidated                 // next said 304: the stored body went out
	staleOnError                // next failed: the stale stored response went out
)

func (rc *ResponseCache) count(o outcome, _ bool) {
	switch o {
	case revalidated:
		rc.counts.revalidated.Add(1)
	case staleOnError:
		rc.counts.stale.Add(1)
	default:
		rc.counts.misses.Add(1)
	}
}

// coalesce runs next once for identical concurrent misses: the first
// request runs it, the others wait and are answered from what it stored,
// or run next themselves if it stored nothing they may use.
func (rc *ResponseCache) coalesce(w http.ResponseWriter, r *http.Request, next http.Handler, key string, rq *directives) {
	c, leader := rc.misses.Begin(key)
	if leader {
		stored := false
		defer func() { c.Finish(stored, nil) }()
		var o outcome
		o, stored = rc.fetch(w, r, next, key, rq, nil)
		rc.count(o, stored)
		if !stored {
			rc.store.markPass(key, time.Now().Add(passTTL))
		}
		return
	}
	if _, err := c.Wait(r.Context()); err != nil {
		return // the client has gone
	}
	rc.answerAfter(w, r, next, key, rq, nil)
}

// revalidate asks next whether stale may still be used, once for identical
// concurrent requests.
func (rc *ResponseCache) revalidate(w http.ResponseWriter, r *http.Request, next http.Handler, key string, rq *directives, stale *response) {
	c, leader := rc.refresh.Begin(key)
	if leader {
		stored := false
		defer func() { c.Finish(stored, nil) }()
		var o outcome
		o, stored = rc.fetch(w, r, next, key, rq, stale)
		rc.count(o, stored)
		return
	}
	if _, err := c.Wait(r.Context()); err != nil {
		return
	}
	rc.answerAfter(w, r, next, key, rq, stale)
}

// answerAfter answers a request that waited for another's handler run:
// from what that run stored if usable, else by running next.
func (rc *ResponseCache) answerAfter(w http.ResponseWriter, r *http.Request, next http.Handler, key string, rq *directives, stale *response) {
	now := time.Now()
	variants, _ := rc.store.get(key, now)
	if resp, _ := choose(variants, r); resp != nil && rc.usable(resp, rq, now) == useFresh {
		rc.counts.hits.Add(1)
		rc.serve(w, r, resp, now, hitValue)
		return
	}
	rc.count(rc.fetch(w, r, next, key, rq, stale))
}

// refreshInBackground revalidates stale on its own goroutine
// (stale-while-revalidate), once per key at a time.
func (rc *ResponseCache) refreshInBackground(r *http.Request, next http.Handler, key string, stale *response) {
	c, leader := rc.refresh.Begin(key)
	if !leader {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	stop := context.AfterFunc(rc.bgCtx, cancel)
	br := r.Clone(ctx)
	br.Method = http.MethodGet
	br.Header.Del("Cache-Control")
	br.Header.Del("Range")
	rc.bg.Add(1)
	go func() {
		stored := false
		defer rc.bg.Done()
		defer stop()
		defer cancel()
		defer func() { c.Finish(stored, nil) }()
		defer func() {
			if p := recover(); p != nil {
				httperr.Handle(rc.errHandler, nil, br, fmt.Errorf("localcache: background refresh of %s panicked: %v", key, p))
			}
		}()
		_, stored = rc.fetch(&discardWriter{h: make(http.Header)}, br, next, key, &noDirectives, stale)
	}()
}

// discardWriter is the ResponseWriter of a background refresh: it keeps
// the header and drops the body (the cache captures it on the way).
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// captureWriter sits under the hook.Writer of a handler run: it forwards
// the body to the client (unless quiet), keeps a copy of up to max bytes
// when capturing, and remembers the first write error, so a body the
// client did not get whole (connection reset) is never stored.
type captureWriter struct {
	http.ResponseWriter
	capture bool
	quiet   bool // the client gets a 304 or a stored response instead
	max     int64
	buf     []byte
	over    bool
	err     error
}

func (c *captureWriter) Write(p []byte) (int, error) {
	n, err := len(p), error(nil)
	if !c.quiet {
		n, err = c.ResponseWriter.Write(p)
		if err != nil && c.err == nil {
			c.err = err
		}
	}
	if c.capture && !c.over {
		if int64(len(c.buf)+n) > c.max {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p[:n]...)
		}
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the client's writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// conditionalFields are the request fields a cache replaces with its own
// validators when it needs a full (storable) response.
var conditionalFields = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// fetch runs next for r and streams its response to w, storing it if it
// may. With stale (a stored response being revalidated), next gets a
// conditional request built from stale's validators; its 304 refreshes
// stale, which is then sent; a 5xx within stale-if-error sends stale
// instead. It reports what was sent and whether a response was stored.
//
// A response is stored only if next returned normally, the client's
// connection took every byte, the body is whole (as long as any
// Content-Length it declared), no purge happened while next ran, and the
// request's reqstate does not show the response as personal.
func (rc *ResponseCache) fetch(w http.ResponseWriter, r *http.Request, next http.Handler, key string, rq *directives, stale *response) (outcome, bool) {
	gen := rc.store.generation()
	r, st := reqstate.Ensure(r)
	tags := new(tagSet)
	r = r.WithContext(context.WithValue(r.Context(), tagKey{}, tags))

	ranged := len(r.Header["Range"]) > 0
	storeable := r.Method == http.MethodGet && !ranged && !rq.noStore
	inner := r
	stripped := false
	if storeable && (stale != nil || hasAny(r.Header, conditionalFields[:])) {
		// Ask for a full response (or a 304 to stale's validators), and
		// answer the client's own preconditions from it.
		inner = new(http.Request)
		*inner = *r
		inner.Header = r.Header.Clone()
		for _, f := range conditionalFields {
			delete(inner.Header, f)
		}
		stripped = true
		if stale != nil {
			if stale.etag != "" {
				inner.Header["If-None-Match"] = []string{stale.etag}
			}
			if lm := stale.header["Last-Modified"]; len(lm) > 0 && !stale.modified.IsZero() {
				inner.Header["If-Modified-Since"] = lm[:1]
			}
		}
	}

	h := w.Header()
	var pre http.Header
	if len(h) > 0 {
		pre = h.Clone()
	}
	var (
		resp   *response // to store
		replay *response // stored response to send after next returns
		o      = fetched
		cw     = &captureWriter{ResponseWriter: w, max: rc.maxBody}
		hw     *hook.Writer
	)
	hw = hook.New(cw, func(status int) int {
		now := time.Now()
		if v := h[rc.tagHeader]; len(v) > 0 {
			Tag(r, splitTags(v)...)
			delete(h, rc.tagHeader)
		}
		if stale != nil && status == http.StatusNotModified {
			up, ok := rc.updated(stale, h, now)
			if up != nil {
				if ok {
					resp = up
				}
				o = revalidated
				hw.DiscardBody()
				cw.quiet = true
				for k, v := range up.header {
					h[k] = v
				}
				h["Age"] = ageValue(up.age(now))
				h["X-Cache"] = revalidatedValue
				if up.status >= 200 && up.status < 300 && conditional.Evaluate(r, up.etag, up.modified) == conditional.NotModified {
					return http.StatusNotModified
				}
				replay = up
				return up.status
			}
		}
		if stale != nil && status >= 500 && !stale.noStale && stale.staleIf > 0 && stale.age(now)-stale.lifetime <= stale.staleIf {
			o, replay = staleOnError, stale
			hw.DiscardBody()
			cw.quiet = true
			clear(h)
			for k, v := range pre {
				h[k] = v
			}
			for k, v := range stale.header {
				h[k] = v
			}
			h["Age"] = ageValue(stale.age(now))
			h["X-Cache"] = staleValue
			return stale.status
		}
		h["X-Cache"] = missValue
		if storeable {
			resp = rc.storable(r, rq, status, h, pre, now)
			cw.capture = resp != nil
		}
		if stripped && status == http.StatusOK && conditional.Evaluate(r, h.Get("Etag"), lastModified(h)) == conditional.NotModified {
			cw.quiet = true
			return http.StatusNotModified
		}
		return status
	})
	next.ServeHTTP(hw, inner)
	hw.Done()
	if replay != nil && r.Method != http.MethodHead {
		w.Write(replay.body)
	}
	if resp == nil || r.Context().Err() != nil {
		return o, false
	}
	if o == fetched {
		if cw.err != nil || cw.over {
			return o, false
		}
		if cl := resp.header["Content-Length"]; len(cl) > 0 {
			if n, ok := parseDelta(cl[0]); !ok || int64(n/time.Second) != int64(len(cw.buf)) {
				return o, false // truncated (or a lying handler): never stored
			}
		} else if resp.status != http.StatusNoContent && resp.status >= 200 {
			resp.header["Content-Length"] = []string{strconv.Itoa(len(cw.buf))}
		}
		resp.body = cw.buf
	}
	snap := st.Snapshot()
	if snap.Use == reqstate.Personal {
		return o, false
	}
	resp.cookies, resp.anonOnly = snap.Cookies, snap.Use == reqstate.Anonymous
	tags.mu.Lock()
	resp.tags = append(resp.tags[:len(resp.tags):len(resp.tags)], tags.tags...)
	tags.mu.Unlock()
	stored := rc.store.put(key, resp, gen, stale)
	if stored {
		rc.counts.stored.Add(1)
	}
	return o, stored
}

func hasAny(h http.Header, names []string) bool {
	for _, n := range names {
		if len(h[n]) > 0 {
			return true
		}
	}
	return false
}

func lastModified(h http.Header) time.Time {
	t, _ := conditional.ParseDate(h.Get("Last-Modified"))
	return t
}

// splitTags splits tag header lines at commas and spaces.
func splitTags(lines []string) []string {
	var tags []string
	for _, line := range lines {
		start := -1
		for i := 0; i <= len(line); i++ {
			if i == len(line) || line[i] == ',' || line[i] == ' ' || line[i] == '\t' {
				if start >= 0 {
					tags = append(tags, line[start:i])
					start = -1
				}
			} else if start < 0 {
				start = i
			}
		}
	}
	return tags
}

// invalidateAfter runs an unsafe request and, if it succeeded, drops what is
// stored for its URL and for same-host URLs in Location and
// Content-Location (RFC 9111 §4.4).
func (rc *ResponseCache) invalidateAfter(w http.ResponseWriter, r *http.Request, next http.Handler) {
	var hw *hook.Writer
	var loc []string
	hw = hook.New(w, func(status int) int {
		h := w.Header()
		delete(h, rc.tagHeader)
		loc = append(h.Values("Location"), h.Values("Content-Location")...)
		return status
	})
	next.ServeHTTP(hw, r)
	hw.Done()
	switch r.Method {
	case http.MethodOptions, http.MethodTrace, "PROPFIND", "REPORT", "SEARCH", "QUERY":
		return // safe methods
	}
	if s := hw.Status(); s < 200 || s >= 400 {
		return
	}
	n := rc.store.purgeKey(rc.key(r))
	for _, l := range loc {
		u, err := r.URL.Parse(l)
		if err != nil || (u.Host != "" && !strings.EqualFold(u.Host, r.Host)) {
			continue
		}
		n += rc.store.purgeKey(rc.makeKey(schemeOf(r), r.Host, u.EscapedPath(), u.RawQuery, u.ForceQuery))
	}
	rc.counts.purged.Add(uint64(n))
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
