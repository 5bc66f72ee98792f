package coherent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sharednothing/sharednothing/internal/reqstate"
)

// TypedCache is what a [Cache] needs of a typed cache with string keys;
// *localcache.Cache[string, V] implements it.
type TypedCache[V any] interface {
	Get(key string) (V, bool)
	GetOrLoad(ctx context.Context, key string, loader func(ctx context.Context, key string) (V, error)) (V, error)
	Load(ctx context.Context, key string, loader func(ctx context.Context, key string) (V, error)) (V, error)
	Delete(key string) bool
	Purge() int
}

// Cache is a typed cache governed by a [Bus]: its keys are invalidated on
// every instance, and loads after an invalidation read at the position of
// the write. Create it with [NewCache]; read through [Cache.GetOrLoad].
type Cache[V any] struct {
	bus   *Bus
	reg   *reg
	cache TypedCache[V]
}

// NewCache registers c with b under name, which must be the same on every
// instance and unique within b. Reads of c must go through
// [Cache.GetOrLoad] for the refill and read-your-writes guarantees; plain
// Get calls on c see invalidations but not those guarantees.
func NewCache[V any](b *Bus, name string, c TypedCache[V]) (*Cache[V], error) {
	r := &reg{
		name: name,
		del:  func(k string) { c.Delete(k) },
		tag:  func(string) {},
		all:  func() { c.Purge() },
	}
	if err := b.register(r); err != nil {
		return nil, fmt.Errorf("coherent: NewCache %q: %w", name, err)
	}
	return &Cache[V]{bus: b, reg: r, cache: c}, nil
}

// Key returns the Item that invalidates key.
func (c *Cache[V]) Key(key string) Item { return Item{op: 'k', cache: c.reg.name, arg: key} }

// All returns the Item that empties the cache.
func (c *Cache[V]) All() Item { return Item{op: 'a', cache: c.reg.name} }

// GetOrLoad returns the cached value for key, or calls loader and caches
// what it returns, like the underlying cache's GetOrLoad, with two
// guarantees on top:
//
//   - After this instance heard that key changed at position P, loader
//     gets a context whose reads see P (through Options.Replicas: a
//     replica that has replayed P, or the primary) until every replica
//     has replayed P. A lagging replica cannot put the old value back.
//   - A request whose client is pinned by replicapin (it wrote recently),
//     or that sent an invalidation itself, is never answered from the
//     cache: it reads through with the cache's Load, which stores the
//     fresh value unless the key is invalidated meanwhile.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, loader func(ctx context.Context, key string) (V, error)) (V, error) {
	if pinned(ctx) {
		return c.cache.Load(c.bus.atLeast(ctx, c.reg, key), key, loader)
	}
	if v, ok := c.cache.Get(key); ok {
		return v, nil // no closure to allocate on a hit
	}
	return c.cache.GetOrLoad(ctx, key, func(ctx context.Context, key string) (V, error) {
		return loader(c.bus.atLeast(ctx, c.reg, key), key)
	})
}

// pinned reports whether the request in ctx must read through caches.
func pinned(ctx context.Context) bool {
	return reqstate.From(ctx).Bypassed()
}

// PageCache is what [Pages] needs of an HTTP response cache;
// *localcache.ResponseCache implements it. Each method returns how many
// entries it removed.
type PageCache interface {
	Purge(url string) (int, error)
	PurgeTag(tag string) int
	PurgeAll() int
}

// Pages is a response cache governed by a [Bus]: URLs and tags purged on
// one instance are purged on every instance, and refills of them read at
// the position of the write. Create it with [NewPages] and mount
// [Pages.Handler].
type Pages struct {
	bus *Bus
	reg *reg
}

// NewPages registers rc with b under name, which must be the same on every
// instance and unique within b.
func NewPages(b *Bus, name string, rc PageCache) (*Pages, error) {
	r := &reg{
		name: name,
		del:  func(u string) { rc.Purge(u) },
		tag:  func(t string) { rc.PurgeTag(t) },
		all:  func() { rc.PurgeAll() },
	}
	if err := b.register(r); err != nil {
		return nil, fmt.Errorf("coherent: NewPages %q: %w", name, err)
	}
	return &Pages{bus: b, reg: r}, nil
}

// URL returns the Item that purges an absolute URL, such as
// "https://example.com/photos/7", in the form the response cache's Purge
// takes (with localcache, the scheme is ignored unless SchemeInKey is set);
// Send and SendTx reject a URL without a host with [ErrBadURL]. Refills of
// every URL with the same path, whatever its host or query, read at the
// write's position.
func (p *Pages) URL(url string) Item { return Item{op: 'u', cache: p.reg.name, arg: url} }

// Tag returns the Item that purges every response tagged tag. Which URLs
// carry a tag is known only once they are rendered, so after a tag purge
// every refill through [Pages.Handler] reads at the write's position until
// the replicas have replayed it (usually milliseconds).
func (p *Pages) Tag(tag string) Item { return Item{op: 't', cache: p.reg.name, arg: tag} }

// All returns the Item that empties the response cache.
func (p *Pages) All() Item { return Item{op: 'a', cache: p.reg.name} }

// Handler makes the handler's reads for a purged URL (or after a purged
// tag) see the purge's position, so that the response cache refills with
// the new content, never with a lagging replica's old one. It only adds
// a value to the request's context (replicapin's AtLeast, through
// Options.Replicas), so it may be mounted anywhere around the
// application; next to the response cache reads best:
//
//	pins.Handler(pages.Handler(responseCache.Handler(app)))
//
// It costs one atomic load per request while nothing is marked.
func (p *Pages) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.reg.active.Load() != 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if ctx := p.bus.atLeast(r.Context(), p.reg, r.URL.Path); ctx != r.Context() {
				r = r.WithContext(ctx)
			}
		}
		next.ServeHTTP(w, r)
	})
}
