// Package localcache provides per-machine, in-process caches: a sharded,
// byte-bounded typed cache with load-through and stampede protection, and an
// HTTP response cache middleware built on it.
//
// A per-machine cache needs no network hop and no coordination, and losing
// one costs only a refill, which is what lets a shared-nothing web tier add
// instances freely.
//
// [Cache] is generic over key and value. Reads take no lock and write only
// their shard's hit counter (plus, once, the entry's recently-used flag), so
// hits scale with cores; writes lock one of several shards. It is bounded by
// entry count, by bytes through a Cost function (never exceeded, not even
// for a moment), or both; evicts in least-recently-used order with a second
// chance for entries read since they were last considered; expires entries
// by a default or per-entry TTL without a sweeper goroutine; and
// [Cache.GetOrLoad] runs one loader per key for any number of concurrent
// misses, with optional stale-while-revalidate and negative caching.
// [Cache.Stats] encodes to JSON, for expvar.
//
//	thumbs, err := localcache.New(localcache.Options[string, []byte]{
//		MaxBytes: 256 << 20,
//		Cost:     func(k string, v []byte) int64 { return int64(len(k) + len(v) + 200) },
//		TTL:      time.Hour,
//	})
//	img, err := thumbs.GetOrLoad(ctx, key, render)
//
// [ResponseCache] is an RFC 9111 shared cache for an application's own
// handlers: it stores GET responses with explicit freshness (Cache-Control
// max-age or s-maxage, CDN-Cache-Control, Expires), revalidates stale ones
// with a conditional request through the handler, serves stale under
// stale-while-revalidate and stale-if-error, answers conditional and
// single-range requests from what it stores, and runs the handler once for
// identical concurrent misses or revalidations. It never stores a truncated
// body, a response that sets a cookie, or one the request asked not to
// store, and through the toolkit's request state it never serves a
// response made for one client's session or pin to another, whatever the
// order it is mounted in. Purge, PurgeTag and PurgeAll report how many
// responses they removed:
//
//	pages, err := localcache.NewResponseCache(localcache.ResponseOptions{MaxBytes: 64 << 20})
//	r.With(pages.Handler).Get("/articles/{id}", article)
//
// # Invalidating a typed cache
//
// After a write, [Cache.Delete] the keys it changed ([Cache.Purge] for
// everything); both report what they removed. An invalidation also covers
// loads already running: a GetOrLoad load that started before Delete, Set
// or Purge of its key still answers the callers waiting for it, but its
// result is not stored (it may have read the data before the write;
// Stats.LoadsDiscarded counts these), and callers arriving after the
// invalidation start a new load. So once Delete returns, the cache holds
// for that key only values from Set or from loader calls that started after
// it. That is the property a cross-instance invalidation needs from the
// cache (the lease of Facebook's memcache paper, NSDI 2013): deliver the
// invalidation to every instance by calling Delete there, and make the
// loader read from a source at least as new as the write, such as the
// primary or a replica that has replayed it, and a lagging replica can
// never re-cache the old value. What the loader reads from is the loader's
// business: wrap it, the cache needs no option for it. A reader that must
// see its own write (pinned to the primary) reads through with
// [Cache.Load], which stores the fresh value under the same rule; avoid Set
// with a value read elsewhere, which stores unconditionally and could put
// back data older than an invalidation already applied.
package localcache
