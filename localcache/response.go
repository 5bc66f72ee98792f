package localcache

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sharednothing/sharednothing/internal/flight"
)

// ErrBadURL is returned by [ResponseCache.Purge] for a URL it cannot parse.
var ErrBadURL = errors.New("localcache: purge URL must be absolute, like https://host/path")

// maxVariants bounds the variants kept per URL, so a Vary on a header with
// many values (User-Agent) cannot crowd out other URLs.
const maxVariants = 16

// passTTL is how long a URL whose response was not storable skips
// coalescing, so requests for an uncacheable page don't queue behind each
// other. A storable response replaces the marker at once.
const passTTL = 30 * time.Second

// ResponseOptions configures a [ResponseCache]. The zero value is usable:
// 64 MiB, bodies up to 1 MiB, no heuristic freshness, CDN-Cache-Control
// honoured, tags read from Cache-Tag, URLs keyed without their scheme.
type ResponseOptions struct {
	// MaxBytes bounds the memory held by stored responses (bodies, headers
	// and a per-entry overhead of about 512 bytes). Zero means 64 MiB.
	MaxBytes int64

	// MaxBodyBytes is the largest body stored. Larger responses stream
	// through to the client uncached, without being buffered whole. Zero
	// means 1 MiB.
	MaxBodyBytes int64

	// DefaultTTL is the heuristic freshness lifetime (RFC 9111 §4.2.2) of
	// a response without explicit freshness (no max-age, s-maxage or
	// Expires) whose status is heuristically cacheable (200, 203, 204, 300,
	// 301, 308, 404, 405, 410, 414, 501). When the response has a
	// Last-Modified, the lifetime is at most a tenth of its age (Date minus
	// Last-Modified), the usual heuristic. Zero (the default) means such
	// responses are not stored: an application server's pages change
	// whenever its data does, and only the handler knows how often.
	DefaultTTL time.Duration

	// MaxStale bounds how long after it went stale a response may still be
	// served: under stale-while-revalidate, stale-if-error (RFC 5861) or a
	// request's max-stale. Zero means one hour.
	MaxStale time.Duration

	// TargetedField is the targeted cache-control field (RFC 9213) that,
	// when the response carries a valid one, replaces Cache-Control and
	// Expires for this cache. Zero means "CDN-Cache-Control"; an
	// application behind a CDN that wants the CDN and this cache to differ
	// names its own field, such as "App-Cache-Control". The field is passed
	// on to the client unchanged.
	TargetedField string

	// TagHeader is the response header by which a handler tags its
	// response for [ResponseCache.PurgeTag] (tags separated by commas or
	// spaces), besides [Tag]. The cache removes it before the response
	// reaches the client. Zero means "Cache-Tag".
	TagHeader string

	// SchemeInKey makes the scheme part of the cache key, so http and https
	// requests for the same host and path are stored apart. By default it
	// is not: behind a TLS-terminating proxy every request arrives over
	// http, and [ResponseCache.Purge] of an https URL must find it. Leave it
	// off only if no handler answers differently by scheme (such as an
	// https redirect mounted inside the cache).
	SchemeInKey bool

	// TrustForwarded makes the key take the host from X-Forwarded-Host
	// (and, with SchemeInKey, the scheme from X-Forwarded-Proto) when the
	// request has them. Turn it on only behind a proxy that sets (or
	// strips) those headers on every request: otherwise a client chooses
	// its own key, and can poison another host's entries in a cache shared
	// by virtual hosts. Off by default: the key uses r.Host and r.TLS.
	TrustForwarded bool

	// SortQuery keys a URL by its query parameters sorted by name (stable,
	// on the raw, still-escaped text), so ?a=1&b=2 and ?b=2&a=1 share
	// entries. Off by default: only the application knows whether the
	// order of its parameters is meaningless. Nothing else about the query
	// is normalised (?a and ?a= stay apart, as do %20 and +).
	SortQuery bool

	// ErrorHandler receives failures of work the cache does on its own:
	// a handler that panicked during a background refresh
	// (stale-while-revalidate), with a nil ResponseWriter. Nil means
	// httperr.Default, which logs through log/slog.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// ResponseCache is an HTTP middleware that stores responses in memory and
// serves later requests for the same URL from there, as a shared cache
// under RFC 9111. Make one with [NewResponseCache] and mount
// [ResponseCache.Handler]. It is safe for concurrent use; [ResponseCache.Close]
// stops its background refreshes.
//
// It may be mounted in any order with the toolkit's session and replicapin
// middlewares: through internal/reqstate it learns how the handler used the
// session and whether the client is pinned, never stores a response that
// depends on the client's session, and never answers a pinned client or a
// client with a session from an entry made for others.
type ResponseCache struct {
	store      *store
	maxBody    int64
	ttl        time.Duration
	maxStale   time.Duration
	targeted   string
	tagHeader  string
	scheme     bool
	forwarded  bool
	sortQuery  bool
	errHandler func(http.ResponseWriter, *http.Request, error)

	misses  flight.Group[string, bool] // coalesced misses, by key
	refresh flight.Group[string, bool] // revalidations, by key

	bgCtx    context.Context // cancelled by Close
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	counts struct {
		hits, stale, revalidated, misses, passes, stored, purged atomic.Uint64
	}
}

// NewResponseCache returns a response cache configured by opts, or an error
// if a size or duration is negative.
func NewResponseCache(opts ResponseOptions) (*ResponseCache, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxBytes", opts.MaxBytes},
		{"MaxBodyBytes", opts.MaxBodyBytes},
		{"DefaultTTL", int64(opts.DefaultTTL)},
		{"MaxStale", int64(opts.MaxStale)},
	} {
		if f.v < 0 {
			return nil, errors.New("localcache: NewResponseCache: ResponseOptions." + f.name + " must not be negative")
		}
	}
	rc := &ResponseCache{
		store:      newStore(rcDefault(opts.MaxBytes, 64<<20)),
		maxBody:    rcDefault(opts.MaxBodyBytes, 1<<20),
		ttl:        opts.DefaultTTL,
		maxStale:   time.Duration(rcDefault(int64(opts.MaxStale), int64(time.Hour))),
		targeted:   http.CanonicalHeaderKey(cmp.Or(opts.TargetedField, "CDN-Cache-Control")),
		tagHeader:  http.CanonicalHeaderKey(cmp.Or(opts.TagHeader, "Cache-Tag")),
		scheme:     opts.SchemeInKey,
		forwarded:  opts.TrustForwarded,
		sortQuery:  opts.SortQuery,
		errHandler: opts.ErrorHandler,
	}
	rc.bgCtx, rc.bgCancel = context.WithCancel(context.Background())
	return rc, nil
}

func rcDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// Close cancels background refreshes in progress and waits for them to
// return. The cache keeps serving; later stale-while-revalidate hits
// refresh in the foreground instead.
func (rc *ResponseCache) Close() error {
	rc.bgCancel()
	rc.bg.Wait()
	return nil
}

// ResponseStats counts what a [ResponseCache] did with HTTP requests. Every
// GET or HEAD request counts once in exactly one of Hits, Stale,
// Revalidated, Misses and Passes. It encodes cleanly with encoding/json and
// expvar.
type ResponseStats struct {
	Hits        uint64 `json:"hits"`        // answered from a fresh stored response
	Stale       uint64 `json:"stale"`       // answered with a stale one (stale-while-revalidate, stale-if-error, max-stale)
	Revalidated uint64 `json:"revalidated"` // answered from a stored response the handler confirmed with 304
	Misses      uint64 `json:"misses"`      // ran the handler: nothing usable was stored
	Passes      uint64 `json:"passes"`      // ran the handler without using the cache (pinned, bypass, session cookie on an anonymous-only entry, Range miss, unsafe method)
	Stored      uint64 `json:"stored"`      // responses stored (including those refreshed by a 304)
	Purged      uint64 `json:"purged"`      // responses removed by Purge, PurgeTag, PurgeAll or an unsafe method
	Entries     int    `json:"entries"`     // responses held now
	Bytes       int64  `json:"bytes"`       // bytes counted against MaxBytes now
	Evictions   uint64 `json:"evictions"`   // entries pushed out by MaxBytes
}

// Stats returns the cache's counters.
func (rc *ResponseCache) Stats() ResponseStats {
	entries, bytes := rc.store.stats()
	rc.store.mu.Lock()
	ev := rc.store.evictions
	rc.store.mu.Unlock()
	return ResponseStats{
		Hits:        rc.counts.hits.Load(),
		Stale:       rc.counts.stale.Load(),
		Revalidated: rc.counts.revalidated.Load(),
		Misses:      rc.counts.misses.Load(),
		Passes:      rc.counts.passes.Load(),
		Stored:      rc.counts.stored.Load(),
		Purged:      rc.counts.purged.Load(),
		Entries:     entries,
		Bytes:       bytes,
		Evictions:   ev,
	}
}

// Purge removes every stored response (all variants) for a URL such as
// "https://example.com/path?q=1" and returns how many it removed. The
// scheme is ignored unless ResponseOptions.SchemeInKey is set; the host and
// the query must be as requests send them (with SortQuery, the order of
// parameters does not matter). It returns [ErrBadURL] if rawURL has no
// host. A handler already running for the URL when Purge is called will not
// store its response.
func (rc *ResponseCache) Purge(rawURL string) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return 0, ErrBadURL
	}
	n := rc.store.purgeKey(rc.makeKey(u.Scheme, u.Host, u.EscapedPath(), u.RawQuery, u.ForceQuery))
	rc.counts.purged.Add(uint64(n))
	return n, nil
}

// PurgeTag removes every stored response tagged with tag (by the TagHeader
// response header or [Tag]) and returns how many it removed.
func (rc *ResponseCache) PurgeTag(tag string) int {
	n := rc.store.purgeTag(tag)
	rc.counts.purged.Add(uint64(n))
	return n
}

// PurgeAll removes every stored response and returns how many it removed.
func (rc *ResponseCache) PurgeAll() int {
	n := rc.store.purgeAll()
	rc.counts.purged.Add(uint64(n))
	return n
}

type tagKey struct{}

// tagSet collects the tags a handler adds with [Tag].
type tagSet struct {
	mu   sync.Mutex
	tags []string
}

// Tag tags the response to r, so that [ResponseCache.PurgeTag] with any of
// tags removes it once stored. It may be called anywhere in the handler,
// before or after writing. Outside a response cache it does nothing.
func Tag(r *http.Request, tags ...string) {
	ts, _ := r.Context().Value(tagKey{}).(*tagSet)
	if ts == nil {
		return
	}
	ts.mu.Lock()
	for _, t := range tags {
		if t != "" && !slices.Contains(ts.tags, t) {
			ts.tags = append(ts.tags, t)
		}
	}
	ts.mu.Unlock()
}

// key builds the cache key of r: host, escaped path and raw query, plus the
// scheme if configured.
func (rc *ResponseCache) key(r *http.Request) string {
	host := r.Host
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if rc.forwarded {
		if v := firstMember(r.Header.Get("X-Forwarded-Host")); v != "" {
			host = v
		}
		if v := firstMember(r.Header.Get("X-Forwarded-Proto")); v != "" {
			scheme = v
		}
	}
	return rc.makeKey(scheme, host, r.URL.EscapedPath(), r.URL.RawQuery, r.URL.ForceQuery)
}

func firstMember(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return strings.TrimSpace(first)
}

func (rc *ResponseCache) makeKey(scheme, host, path, rawQuery string, forceQuery bool) string {
	if path == "" {
		path = "/"
	}
	if rc.sortQuery && strings.Contains(rawQuery, "&") {
		pairs := strings.Split(rawQuery, "&")
		slices.SortStableFunc(pairs, func(a, b string) int {
			an, _, _ := strings.Cut(a, "=")
			bn, _, _ := strings.Cut(b, "=")
			return strings.Compare(an, bn)
		})
		rawQuery = strings.Join(pairs, "&")
	}
	var b strings.Builder
	b.Grow(len(scheme) + len(host) + len(path) + len(rawQuery) + 4)
	if rc.scheme {
		b.WriteString(strings.ToLower(scheme))
		b.WriteString(":")
	}
	b.WriteString("//")
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	b.WriteString(path)
	if rawQuery != "" || forceQuery {
		b.WriteByte('?')
		b.WriteString(rawQuery)
	}
	return b.String()
}
