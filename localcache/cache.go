package localcache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLoaderPanic is wrapped by the error [Cache.GetOrLoad] returns to every
// waiter when the loader panicked.
var ErrLoaderPanic = errors.New("localcache: loader panicked")

// ErrClosed is returned by [Cache.GetOrLoad] after [Cache.Close].
var ErrClosed = errors.New("localcache: cache is closed")

// DefaultMaxEntries bounds a cache whose Options set neither MaxEntries nor
// MaxBytes.
const DefaultMaxEntries = 10_000

// EvictReason says why an entry left the cache.
type EvictReason int

// The reasons passed to [Options.OnEvict].
const (
	Evicted  EvictReason = iota + 1 // pushed out by the size bound
	Expired                         // its TTL (and stale window) ran out
	Deleted                         // removed by Delete or Purge
	Replaced                        // overwritten by Set or a refresh
)

// String returns the reason's name, e.g. "evicted".
func (r EvictReason) String() string {
	switch r {
	case Evicted:
		return "evicted"
	case Expired:
		return "expired"
	case Deleted:
		return "deleted"
	case Replaced:
		return "replaced"
	}
	return fmt.Sprintf("EvictReason(%d)", int(r))
}

// Options configures a [Cache]. The zero value is a cache of
// [DefaultMaxEntries] entries that never expire. [New] rejects negative
// values.
type Options[K comparable, V any] struct {
	// MaxEntries bounds the number of entries. Zero means no count bound,
	// unless MaxBytes is zero too: then it is DefaultMaxEntries.
	MaxEntries int

	// MaxBytes bounds the sum of Cost over all entries; the cache never holds
	// more, not even for a moment: room is reserved before an entry is
	// stored. Zero means no byte bound. It needs Cost. A value costing more
	// than MaxBytes is not stored.
	MaxBytes int64

	// Cost returns what an entry counts against MaxBytes, typically the size
	// of the value plus a fixed overhead for the key and bookkeeping (about
	// 200 bytes an entry). It is called once per Set, outside any lock.
	Cost func(key K, value V) int64

	// TTL is how long an entry set with Set or loaded by GetOrLoad stays
	// fresh. Zero means entries never expire. SetWithTTL overrides it per
	// entry. With any of TTL, StaleWhileRevalidate or ErrorTTL set, the
	// cache reads a clock that a goroutine of its own advances every
	// millisecond until Close, so an entry may live up to 1 ms past its
	// TTL.
	TTL time.Duration

	// Shards is the number of independently locked shards, rounded up to a
	// power of two. Zero means 4×GOMAXPROCS rounded up to a power of two (at
	// least 8). The bounds are cache-wide; each shard evicts its own least
	// recently used entries, taking from other shards only when it has none.
	Shards int

	// StaleWhileRevalidate lets GetOrLoad return an expired value for up to
	// this long after it expired while one background refresh runs the
	// loader. Get never returns an expired value. Zero turns it off.
	StaleWhileRevalidate time.Duration

	// ErrorTTL caches a loader's error for this long, so GetOrLoad returns it
	// without calling the loader again (negative caching). Zero (the default)
	// caches no errors.
	ErrorTTL time.Duration

	// OnEvict, if set, is called after an entry leaves the cache, with the
	// reason. It runs outside any lock, on the goroutine that caused the
	// eviction, and may call back into the cache.
	OnEvict func(key K, value V, reason EvictReason)
}

// Stats is a snapshot of a cache's counters. It encodes cleanly with
// encoding/json, so it publishes directly with expvar.Func.
type Stats struct {
	Hits           uint64 `json:"hits"`            // Get and GetOrLoad calls answered from the cache
	Misses         uint64 `json:"misses"`          // Get and GetOrLoad calls not answered from the cache
	Loads          uint64 `json:"loads"`           // loader calls that returned a value
	LoadErrors     uint64 `json:"load_errors"`     // loader calls that returned an error or panicked
	LoadsDiscarded uint64 `json:"loads_discarded"` // loaded values not stored: their key was deleted, set or purged while the loader ran
	Evictions      uint64 `json:"evictions"`       // entries pushed out by the size bound
	Expirations    uint64 `json:"expirations"`     // entries removed because they expired
	Entries        int    `json:"entries"`         // entries held now
	Bytes          int64  `json:"bytes"`           // sum of Cost over the entries held now
}

// Cache is a sharded, bounded, typed in-memory cache. Reads take no lock; a
// hit writes only its shard's hit counter (and, once, the entry's
// recently-used flag), so hits scale with cores; writes lock one shard. Each shard evicts in
// least-recently-used order with a second chance for entries read since they
// were last considered, so recency costs a hit one flag at most.
//
// A Cache is safe for concurrent use. Its zero value is not usable; call
// [New], and [Cache.Close] when done: a cache with a TTL runs a clock
// goroutine.
type Cache[K comparable, V any] struct {
	shards []shard[K, V]
	shift  uint // hash >> shift picks the shard
	seed   maphash.Seed

	ttl, swr, errTTL time.Duration
	cost             func(K, V) int64
	onEvict          func(K, V, EvictReason)
	base             time.Time // now() counts from here
	clock            *clock    // nil unless entries expire by default

	budget            budget
	loads, loadErrors atomic.Uint64

	// ctx is cancelled by Close; it parents every load and refresh, which
	// wg tracks.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
}

// node is one entry. Only ref, refreshing and the list links change after
// it is published; a Set makes a new node.
type node[K comparable, V any] struct {
	key        K
	value      V
	err        error // a cached loader error (negative entry)
	hash       uint64
	expires    int64 // c.now() at which it expires; 0 never
	cost       int64
	ref        atomic.Uint32 // read since the evictor last looked
	refreshing atomic.Bool   // a stale-while-revalidate refresh is running

	prev, next *node[K, V] // the shard's recency list, under its mu
}

// evictee is an entry removed under a lock whose OnEvict runs after it.
type evictee[K comparable, V any] struct {
	n      *node[K, V]
	reason EvictReason
}

// New returns a cache configured by opts, or an error if opts has a
// negative field or sets MaxBytes without Cost.
func New[K comparable, V any](opts Options[K, V]) (*Cache[K, V], error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxEntries", int64(opts.MaxEntries)},
		{"MaxBytes", opts.MaxBytes},
		{"TTL", int64(opts.TTL)},
		{"Shards", int64(opts.Shards)},
		{"StaleWhileRevalidate", int64(opts.StaleWhileRevalidate)},
		{"ErrorTTL", int64(opts.ErrorTTL)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("localcache: New: Options.%s must not be negative", f.name)
		}
	}
	if opts.MaxBytes > 0 && opts.Cost == nil {
		return nil, errors.New("localcache: New: Options.MaxBytes needs Options.Cost")
	}
	maxEntries := opts.MaxEntries
	if maxEntries == 0 && opts.MaxBytes == 0 {
		maxEntries = DefaultMaxEntries
	}
	n := opts.Shards
	if n == 0 {
		n = max(8, 4*runtime.GOMAXPROCS(0))
	}
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	n = min(n, 1<<16)
	c := &Cache[K, V]{
		shards:  make([]shard[K, V], n),
		shift:   uint(64 - bits.TrailingZeros(uint(n))),
		seed:    maphash.MakeSeed(),
		budget:  budget{maxEntries: int64(maxEntries), maxBytes: opts.MaxBytes},
		ttl:     opts.TTL,
		swr:     opts.StaleWhileRevalidate,
		errTTL:  opts.ErrorTTL,
		cost:    opts.Cost,
		onEvict: opts.OnEvict,
		base:    time.Now(),
	}
	if n == 1 {
		c.shift = 63 // hash >> 63 is 0 or 1; shardFor masks it
	}
	if c.ttl > 0 || c.swr > 0 || c.errTTL > 0 {
		c.clock = startClock(c.base)
		runtime.AddCleanup(c, (*clock).halt, c.clock)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := range c.shards {
		c.shards[i].init(i, &c.budget)
	}
	return c, nil
}

// now returns nanoseconds since the cache was made, at least 1: from the
// cache's coarse clock while it runs (see [clock] for why there is one),
// else from the monotonic clock.
func (c *Cache[K, V]) now() int64 {
	if c.clock != nil {
		if t := c.clock.now.Load(); t != 0 {
			return t
		}
	}
	return sinceBase(c.base)
}

// hash hashes a key with the map hasher for K.
func (c *Cache[K, V]) hash(key K) uint64 { return maphash.Comparable(c.seed, key) }

func (c *Cache[K, V]) shardFor(h uint64) *shard[K, V] {
	return &c.shards[(h>>c.shift)&uint64(len(c.shards)-1)]
}

// Get returns the value for key and whether it was there and fresh.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	h := c.hash(key)
	s := c.shardFor(h)
	n := s.find(h, key)
	if n != nil && n.err == nil && (n.expires == 0 || c.now() < n.expires) {
		n.touch()
		s.hits.Add(1)
		return n.value, true
	}
	if n != nil && n.expires != 0 && c.now() >= n.expires+int64(c.swr) {
		c.expire(s, n)
	}
	s.misses.Add(1)
	var zero V
	return zero, false
}

// Set stores value under key with the default TTL, replacing any value
// there. A GetOrLoad load of key that is running does not overwrite it.
func (c *Cache[K, V]) Set(key K, value V) {
	c.SetWithTTL(key, value, c.ttl)
}

// SetWithTTL stores value under key for ttl; a ttl of zero or less means the
// entry never expires. A GetOrLoad load of key that is running does not
// overwrite it.
func (c *Cache[K, V]) SetWithTTL(key K, value V, ttl time.Duration) {
	c.put(c.newNode(key, value, nil, ttl), nil, nil)
}

// newNode makes an entry expiring after ttl (never if ttl <= 0).
func (c *Cache[K, V]) newNode(key K, value V, err error, ttl time.Duration) *node[K, V] {
	n := &node[K, V]{key: key, value: value, err: err, hash: c.hash(key)}
	if ttl > 0 {
		n.expires = c.now() + int64(ttl)
	}
	if c.cost != nil && err == nil {
		n.cost = max(0, c.cost(key, value))
	}
	return n
}

// put stores n, evicting as needed, then runs OnEvict for what left. If
// expect is non-nil (a refresh), n is stored only if expect is still there.
// If fl is non-nil, n comes from the load fl and is stored only if its key
// has not been written, deleted or purged since that load started (and, for
// Load, then supersedes the other loads running). With neither, put is a
// Set, which the loads of its key running now must not overwrite.
func (c *Cache[K, V]) put(n, expect *node[K, V], fl *fillRef) {
	s := c.shardFor(n.hash)
	var out []evictee[K, V]
	s.mu.Lock()
	switch {
	case fl != nil:
		if !s.endFillLocked(n.key, fl) {
			s.mu.Unlock()
			return
		}
		if fl.supersede {
			s.invalidateLocked(n.key)
		}
	case expect == nil:
		s.invalidateLocked(n.key)
	}
	old := s.find(n.hash, n.key)
	if expect != nil && old != expect {
		s.mu.Unlock()
		return // a newer value arrived while this one loaded
	}
	var dc, db int64 = 1, n.cost
	if old != nil {
		dc, db = 0, n.cost-old.cost
	}
	tooBig := c.budget.maxBytes > 0 && n.cost > c.budget.maxBytes
	for tooBig || !c.budget.reserve(dc, db) {
		e, ok := evictee[K, V]{}, false
		if !tooBig {
			e, ok = s.evictOneLocked(old, c.now())
		}
		if !ok && !tooBig {
			e, ok = c.evictElsewhere(s)
		}
		if !ok {
			// It cannot fit (it alone passes the bound, or every other
			// shard is busy): drop it, and the value it would replace,
			// which is out of date.
			if old != nil {
				s.removeLocked(old)
				out = c.keep(out, evictee[K, V]{old, Replaced})
			}
			s.mu.Unlock()
			c.notify(out)
			return
		}
		out = c.keep(out, e)
	}
	s.linkLocked(n, old)
	if old != nil {
		out = c.keep(out, evictee[K, V]{old, Replaced})
	}
	s.mu.Unlock()
	c.notify(out)
}

// evictElsewhere evicts one entry from a shard other than own, skipping
// shards whose lock is busy (own is locked; waiting could deadlock).
func (c *Cache[K, V]) evictElsewhere(own *shard[K, V]) (evictee[K, V], bool) {
	for i := 1; i < len(c.shards); i++ {
		s := &c.shards[(own.idx+i)&(len(c.shards)-1)]
		if !s.mu.TryLock() {
			continue
		}
		e, ok := s.evictOneLocked(nil, c.now())
		s.mu.Unlock()
		if ok {
			return e, true
		}
	}
	return evictee[K, V]{}, false
}

// Delete removes key and reports whether it held a value, calling OnEvict
// with [Deleted] if so.
//
// Delete also invalidates loads of key that are running: their result still
// goes to the GetOrLoad calls already waiting for it but is not stored, and
// later GetOrLoad calls start a new load. So once Delete returns, whatever
// the cache holds for key comes from Set or from a loader call that started
// after Delete: a loader that reads a source at least as new as the change
// that prompted the Delete never re-caches the old value.
func (c *Cache[K, V]) Delete(key K) bool {
	h := c.hash(key)
	s := c.shardFor(h)
	s.mu.Lock()
	s.invalidateLocked(key)
	s.flight.Forget(key)
	n := s.find(h, key)
	if n != nil {
		s.removeLocked(n)
	}
	s.mu.Unlock()
	if n == nil {
		return false
	}
	c.notify(c.keep(nil, evictee[K, V]{n, Deleted}))
	return n.err == nil
}

// expire removes n if it is still the entry for its key.
func (c *Cache[K, V]) expire(s *shard[K, V], n *node[K, V]) {
	s.mu.Lock()
	cur := s.find(n.hash, n.key)
	if cur == n {
		s.removeLocked(n)
		s.expirations++
	}
	s.mu.Unlock()
	if cur == n {
		c.notify(c.keep(nil, evictee[K, V]{n, Expired}))
	}
}

// Len returns the number of entries held, including expired ones not yet
// removed.
func (c *Cache[K, V]) Len() int {
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		total += s.count
		s.mu.Unlock()
	}
	return total
}

// Purge removes every entry, calling OnEvict with [Deleted] for each, and
// returns how many values it removed. Like [Cache.Delete] for every key, it
// invalidates the loads running when it is called.
func (c *Cache[K, V]) Purge() int {
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		var out []evictee[K, V]
		s.mu.Lock()
		for key := range s.fills {
			s.invalidateLocked(key)
			s.flight.Forget(key)
		}
		for n := s.lru.next; n != &s.lru; n = n.next {
			if n.err == nil {
				removed++
				out = c.keep(out, evictee[K, V]{n, Deleted})
			}
		}
		c.budget.entries.Add(-int64(s.count))
		c.budget.bytes.Add(-s.bytes)
		s.clearLocked()
		s.mu.Unlock()
		c.notify(out)
	}
	return removed
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	st := Stats{
		Loads:      c.loads.Load(),
		LoadErrors: c.loadErrors.Load(),
		Entries:    int(c.budget.entries.Load()),
		Bytes:      c.budget.bytes.Load(),
	}
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		s.mu.Lock()
		st.Evictions += s.evictions
		st.Expirations += s.expirations
		st.LoadsDiscarded += s.discarded
		s.mu.Unlock()
	}
	return st
}

// Close stops the cache's background work: it cancels the context of
// running loads and refreshes and waits for them to return, and stops the
// clock goroutine of a cache with a TTL. The entries stay readable;
// GetOrLoad and Load return [ErrClosed] afterwards. Close is idempotent.
func (c *Cache[K, V]) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.clock != nil {
		c.clock.halt()
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// keep appends e to out if OnEvict wants to hear about it.
func (c *Cache[K, V]) keep(out []evictee[K, V], e evictee[K, V]) []evictee[K, V] {
	if c.onEvict == nil || e.n.err != nil {
		return out
	}
	return append(out, e)
}

// notify runs OnEvict for out; callers hold no lock.
func (c *Cache[K, V]) notify(out []evictee[K, V]) {
	for _, e := range out {
		c.onEvict(e.n.key, e.n.value, e.reason)
	}
}
