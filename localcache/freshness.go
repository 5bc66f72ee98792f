package localcache

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sharednothing/sharednothing/internal/conditional"
	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// response is one stored response. It is never modified once stored; a
// 304 makes a new one.
type response struct {
	status int
	header http.Header // as sent to the client, minus what must not be stored
	body   []byte

	vary    []string // canonical names from Vary
	varyKey string   // the storing request's values of those headers

	// Freshness (RFC 9111 §4.2): the age it had when received, when that
	// was, and its lifetime.
	received   time.Time
	initialAge time.Duration
	lifetime   time.Duration
	noCache    bool // every use needs validation (no-cache)
	noStale    bool // must-revalidate, proxy-revalidate or s-maxage: never served stale
	staleWhile time.Duration
	staleIf    time.Duration

	authOK   bool // may answer a request with Authorization
	etag     string
	modified time.Time // Last-Modified, zero if none

	tags     []string
	cookies  []reqstate.Cookie // per-client cookies known when stored
	anonOnly bool              // only for requests carrying none of cookies' Session cookies
}

// age returns the response's current age (RFC 9111 §4.2.3).
func (r *response) age(now time.Time) time.Duration {
	return r.initialAge + max(0, now.Sub(r.received))
}

func (r *response) cost() int64 {
	n := int64(len(r.body)+len(r.varyKey)) + entryOverhead
	for name, vals := range r.header {
		n += int64(len(name))
		for _, s := range vals {
			n += int64(len(s)) + 16
		}
	}
	return n
}

// heuristicStatuses are the statuses RFC 9110 §15.1 lets a cache store
// without explicit freshness, minus 206 (only complete responses are
// stored).
var heuristicStatuses = [...]int{200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}

// understoodStatuses are the statuses whose semantics this cache knows,
// for must-understand (RFC 9111 §5.2.2.3).
var understoodStatuses = [...]int{200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501}

// notStored are header fields never stored: hop-by-hop fields and the
// cache's own.
var notStored = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authentication-Info", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "X-Cache", "Age"}

// responseDirectives returns the directives that govern h for this cache:
// the targeted field's if valid (RFC 9213), else Cache-Control's. explicit
// tells whether Expires may be used (not when a targeted field applies).
func (rc *ResponseCache) responseDirectives(h http.Header) (d directives, useExpires bool) {
	if t, ok := parseTargeted(h[rc.targeted]); ok {
		return t, false
	}
	return parseCacheControl(h["Cache-Control"]), true
}

// storable decides, under RFC 9111 §3 for a shared cache and this
// package's stricter rules, whether the response about to be sent may be
// stored. It returns the response to fill in (header snapshot, freshness,
// validators), or nil. pre holds the header fields that were already set
// before the handler ran (by outer middlewares); those are not stored.
func (rc *ResponseCache) storable(r *http.Request, rq *directives, status int, h, pre http.Header, now time.Time) *response {
	if rq.noStore || status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return nil
	}
	if len(h["Set-Cookie"]) > 0 || len(h["Set-Cookie2"]) > 0 {
		return nil // a cookie is for one client
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, ok := parseDelta(cl); !ok || int64(n/time.Second) > rc.maxBody {
			return nil
		}
	}
	d, useExpires := rc.responseDirectives(h)
	if d.mustUnderstand {
		if !slices.Contains(understoodStatuses[:], status) {
			return nil
		}
		d.noStore = false // §5.2.2.3: must-understand overrides no-store for understood statuses
	}
	if d.noStore || d.private {
		return nil
	}
	// RFC 9111 §3.5 also allows must-revalidate; this cache does not: a
	// handler that wants an authorized response shared says public or s-maxage.
	authOK := d.public || d.sMaxAge >= 0
	if len(r.Header["Authorization"]) > 0 && !authOK {
		return nil
	}
	vary, star := varyNames(h)
	if star {
		return nil
	}

	// Freshness lifetime (§4.2.1): s-maxage, max-age, Expires, heuristic.
	date, hasDate := conditional.ParseDate(h.Get("Date"))
	var lifetime time.Duration
	explicit := true
	switch {
	case d.sMaxAge >= 0:
		lifetime = d.sMaxAge
	case d.maxAge >= 0:
		lifetime = d.maxAge
	case useExpires && len(h["Expires"]) > 0:
		// §5.3: an invalid date, including a second Expires line, means
		// already expired.
		if exp, ok := conditional.ParseDate(h["Expires"][0]); ok && len(h["Expires"]) == 1 {
			base := now
			if hasDate {
				base = date
			}
			lifetime = max(0, exp.Sub(base))
		}
	default:
		explicit = false
	}
	modified, hasModified := conditional.ParseDate(h.Get("Last-Modified"))
	if !explicit {
		// Heuristic freshness only for the heuristically cacheable
		// statuses, even with public: an error page is stored only when
		// the handler made it explicitly fresh.
		if !slices.Contains(heuristicStatuses[:], status) || rc.ttl == 0 {
			if !d.noCache || h.Get("Etag") == "" && !hasModified {
				return nil
			}
			// no-cache with a validator: stored only to be revalidated.
		} else {
			lifetime = rc.ttl
			if hasModified {
				base := now
				if hasDate {
					base = date
				}
				lifetime = min(lifetime, max(0, base.Sub(modified))/10)
			}
		}
	}

	// Age (§4.2.3): the handler runs in-process, so response_delay is
	// nothing and the corrected initial age is the larger of the Age field
	// and the apparent age from Date.
	initialAge := parseAge(h)
	if hasDate {
		initialAge = max(initialAge, now.Sub(date))
	}
	if d.noCache && h.Get("Etag") == "" && !hasModified {
		return nil // would need validation on every use, and has no validator
	}
	stale := lifetime <= initialAge
	if stale && h.Get("Etag") == "" && !hasModified && d.staleIf <= 0 && d.staleWhile <= 0 {
		return nil // stale on arrival and cannot be validated: useless
	}

	header := make(http.Header, len(h))
	for k, v := range h {
		if slices.Contains(notStored[:], k) || k == rc.tagHeader {
			continue
		}
		if p, ok := pre[k]; ok && slices.Equal(p, v) {
			continue // set by a middleware outside the cache: it sets it again
		}
		header[k] = slices.Clip(slices.Clone(v))
	}
	for _, line := range h["Connection"] {
		for f := range strings.SplitSeq(line, ",") {
			delete(header, http.CanonicalHeaderKey(strings.TrimSpace(f)))
		}
	}
	for _, f := range d.noCacheFields {
		delete(header, f)
	}
	for _, f := range d.privateFields {
		delete(header, f)
	}
	resp := &response{
		status:     status,
		header:     header,
		vary:       vary,
		varyKey:    variantKey(vary, r.Header),
		received:   now,
		initialAge: initialAge,
		lifetime:   lifetime,
		noCache:    d.noCache,
		noStale:    d.mustRevalidate || d.proxyRevalidate || d.sMaxAge >= 0 || d.noCache,
		staleWhile: min(max(0, d.staleWhile), rc.maxStale),
		staleIf:    min(max(0, d.staleIf), rc.maxStale),
		authOK:     authOK,
		etag:       h.Get("Etag"),
	}
	if hasModified {
		resp.modified = modified
	}
	return resp
}

// variantKey joins the values of the request headers named by vary.
func variantKey(vary []string, h http.Header) string {
	if len(vary) == 0 {
		return ""
	}
	var b strings.Builder
	for _, name := range vary {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range h[name] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// updated returns a copy of r refreshed by a 304 response's header h
// (RFC 9111 §4.3.4 and §3.2): h's fields replace the stored ones, except
// those a cache must not update, and freshness restarts from now. ok is
// false if the 304 is not for r (its strong validator differs) or cannot
// be stored (it sets a cookie, says no-store or private).
func (rc *ResponseCache) updated(stored *response, h http.Header, now time.Time) (resp *response, storable bool) {
	if et := h.Get("Etag"); et != "" && stored.etag != "" && !conditional.WeakMatch(et, stored.etag) {
		return nil, false
	}
	// The merged fields share the stored and received slices; storable
	// copies what it keeps.
	header := make(http.Header, len(stored.header)+len(h))
	maps.Copy(header, stored.header)
	for k, v := range h {
		switch {
		case slices.Contains(notStored[:], k), k == rc.tagHeader, k == "Content-Length", k == "Set-Cookie", k == "Set-Cookie2":
			continue
		}
		header[k] = v
	}
	rq := newDirectives()
	next := rc.storable(&http.Request{Header: http.Header{}}, &rq, stored.status, header, nil, now)
	if next == nil {
		// Not storable any more; still the stored body with new headers
		// may be sent to this client.
		cp := *stored
		cp.header = header.Clone()
		return &cp, false
	}
	next.body = stored.body
	next.vary, next.varyKey = stored.vary, stored.varyKey
	next.authOK = stored.authOK
	next.tags, next.cookies, next.anonOnly = stored.tags, stored.cookies, stored.anonOnly
	storable = len(h["Set-Cookie"]) == 0 && len(h["Set-Cookie2"]) == 0
	return next, storable
}
