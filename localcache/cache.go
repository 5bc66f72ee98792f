package localcache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Errors returned by [New] for options it cannot honour.
var (
	ErrNegative = errors.New("localcache: MaxEntries, MaxBytes, TTL, Shards, StaleWhileRevalidate and ErrorTTL must not be negative")
	ErrNoCost   = errors.New("localcache: MaxBytes needs a Cost function")
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
// [DefaultMaxEntries] entries that never expire.
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
	// entry. With any of TTL, StaleWhileRevalidate or ErrorTTL set, expiry
	// reads a clock shared by all caches that ticks every millisecond
	// (until Close), so an entry may live up to 1 ms past its TTL.
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

	// Now returns the current time. Zero means time.Now; tests inject a fake
	// clock here. Only differences between its results matter.
	Now func() time.Time
}

// Stats is a snapshot of a cache's counters. Its fields are exported so
// it publishes directly with expvar.Func.
type Stats struct {
	Hits        uint64 // Get and GetOrLoad calls answered from the cache
	Misses      uint64 // Get and GetOrLoad calls not answered from the cache
	Loads       uint64 // loader calls that returned a value
	LoadErrors  uint64 // loader calls that returned an error or panicked
	Evictions   uint64 // entries pushed out by the size bound
	Expirations uint64 // entries removed because they expired
	Entries     int    // entries held now
	Bytes       int64  // sum of Cost over the entries held now
}

// Cache is a sharded, bounded, typed in-memory cache. Reads take no lock and
// write no shared memory in the common case, so hits scale with cores;
// writes lock one shard. Each shard evicts in least-recently-used order
// (kept by a [simplelru.LRU]) with a second chance for entries read since
// they were last considered, so recency costs a hit one flag at most.
//
// A Cache is safe for concurrent use. Its zero value is not usable; call
// [New].
type Cache[K comparable, V any] struct {
	shards []shard[K, V]
	shift  uint // hash >> shift picks the shard
	seed   maphash.Seed

	ttl, swr, errTTL time.Duration
	cost             func(K, V) int64
	onEvict          func(K, V, EvictReason)
	nowFn            func() time.Time // nil: the coarse clock or time.Since(base)
	base             time.Time
	coarse           atomic.Bool // read the shared coarse clock

	budget            budget
	stats             *counters
	loads, loadErrors atomic.Uint64

	// ctx is cancelled by Close; it parents every load and refresh, which
	// wg tracks.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
}

// node is one entry. Only ref and refreshing change after it is published;
// a Set makes a new node.
type node[K comparable, V any] struct {
	key        K
	value      V
	err        error // a cached loader error (negative entry)
	hash       uint64
	expires    int64 // c.now() at which it expires; 0 never
	cost       int64
	ref        atomic.Uint32 // read since the evictor last looked
	refreshing atomic.Bool   // a stale-while-revalidate refresh is running
}

// evictee is an entry removed under a lock whose OnEvict runs after it.
type evictee[K comparable, V any] struct {
	n      *node[K, V]
	reason EvictReason
}

// New returns a cache configured by opts, or an error wrapping
// [ErrNegative] or [ErrNoCost] if opts cannot be honoured.
func New[K comparable, V any](opts Options[K, V]) (*Cache[K, V], error) {
	if opts.MaxEntries < 0 || opts.MaxBytes < 0 || opts.TTL < 0 || opts.Shards < 0 ||
		opts.StaleWhileRevalidate < 0 || opts.ErrorTTL < 0 {
		return nil, ErrNegative
	}
	if opts.MaxBytes > 0 && opts.Cost == nil {
		return nil, ErrNoCost
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
	if n > 1<<16 {
		n = 1 << 16
	}
	c := &Cache[K, V]{
		shards:  make([]shard[K, V], n),
		shift:   uint(64 - bits.TrailingZeros(uint(n))),
		seed:    maphash.MakeSeed(),
		budget:  budget{maxEntries: int64(maxEntries), maxBytes: opts.MaxBytes},
		stats:   newCounters(16 * runtime.GOMAXPROCS(0)),
		ttl:     opts.TTL,
		swr:     opts.StaleWhileRevalidate,
		errTTL:  opts.ErrorTTL,
		cost:    opts.Cost,
		onEvict: opts.OnEvict,
		nowFn:   opts.Now,
	}
	if n == 1 {
		c.shift = 63 // hash >> 63 is 0 or 1; shardFor masks it
	}
	if c.nowFn != nil {
		c.base = c.nowFn()
	} else {
		c.base = coarseBase
		if c.ttl > 0 || c.swr > 0 || c.errTTL > 0 {
			coarseStart()
			c.coarse.Store(true)
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := range c.shards {
		s := &c.shards[i]
		s.idx = i
		s.budget = &c.budget
		s.lru, _ = simplelru.NewLRU[K, *node[K, V]](math.MaxInt, nil)
		s.tab.Store(newTable[K, V](8))
	}
	return c, nil
}

// now returns nanoseconds since c.base, at least 1: from Options.Now if
// set, else from the coarse clock while the cache uses it, else from
// time.Since.
func (c *Cache[K, V]) now() int64 {
	if c.coarse.Load() {
		return coarse.now.Load() + 1
	}
	if c.nowFn != nil {
		return int64(c.nowFn().Sub(c.base)) + 1
	}
	return int64(time.Since(c.base)) + 1
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
	if n == nil || n.err != nil {
		c.stats.miss()
		var zero V
		return zero, false
	}
	if n.expires != 0 {
		if now := c.now(); now >= n.expires {
			if c.swr == 0 || now >= n.expires+int64(c.swr) {
				c.expire(s, n)
			}
			c.stats.miss()
			var zero V
			return zero, false
		}
	}
	if n.ref.Load() == 0 {
		n.ref.Store(1)
	}
	c.stats.hit()
	return n.value, true
}

// peek returns key's live value without counting a hit or marking it used.
func (c *Cache[K, V]) peek(key K) (V, bool) {
	n := c.shardFor(c.hash(key)).find(c.hash(key), key)
	if n == nil || n.err != nil || (n.expires != 0 && c.now() >= n.expires) {
		var zero V
		return zero, false
	}
	return n.value, true
}

// Set stores value under key with the default TTL, replacing any value
// there.
func (c *Cache[K, V]) Set(key K, value V) {
	c.SetWithTTL(key, value, c.ttl)
}

// SetWithTTL stores value under key for ttl; a ttl of zero or less means the
// entry never expires.
func (c *Cache[K, V]) SetWithTTL(key K, value V, ttl time.Duration) {
	n := &node[K, V]{key: key, value: value}
	if ttl > 0 {
		n.expires = c.now() + int64(ttl)
	}
	if c.cost != nil {
		n.cost = max(0, c.cost(key, value))
	}
	c.put(n, nil)
}

// put stores n, evicting as needed, then runs OnEvict for what left.
// If expect is non-nil, n is stored only if expect is still there.
func (c *Cache[K, V]) put(n, expect *node[K, V]) {
	n.hash = c.hash(n.key)
	s := c.shardFor(n.hash)
	var now int64 // only to tell expired evictions from others
	if n.expires != 0 || c.coarse.Load() || c.nowFn != nil {
		now = c.now()
	}
	var out []evictee[K, V]
	s.mu.Lock()
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
			e, ok = s.evictOneLocked(old, now)
		}
		if !ok && !tooBig {
			e, ok = c.evictElsewhere(s, now)
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
func (c *Cache[K, V]) evictElsewhere(own *shard[K, V], now int64) (evictee[K, V], bool) {
	for i := 1; i < len(c.shards); i++ {
		s := &c.shards[(own.idx+i)&(len(c.shards)-1)]
		if !s.mu.TryLock() {
			continue
		}
		e, ok := s.evictOneLocked(nil, now)
		s.mu.Unlock()
		if ok {
			return e, true
		}
	}
	return evictee[K, V]{}, false
}

// Delete removes key, calling OnEvict with [Deleted] if it was there.
func (c *Cache[K, V]) Delete(key K) {
	h := c.hash(key)
	s := c.shardFor(h)
	s.mu.Lock()
	n := s.findLocked(h, key)
	if n != nil {
		s.removeLocked(n)
	}
	s.mu.Unlock()
	if n != nil {
		c.notify([]evictee[K, V]{{n, Deleted}})
	}
}

// expire removes n if it is still the entry for its key.
func (c *Cache[K, V]) expire(s *shard[K, V], n *node[K, V]) {
	s.mu.Lock()
	cur := s.findLocked(n.hash, n.key)
	if cur == n {
		s.removeLocked(n)
		s.expirations++
	}
	s.mu.Unlock()
	if cur == n {
		c.notify([]evictee[K, V]{{n, Expired}})
	}
}

// Len returns the number of entries held, including expired ones not yet
// removed.
func (c *Cache[K, V]) Len() int {
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		total += s.lru.Len()
		s.mu.Unlock()
	}
	return total
}

// Purge removes every entry, calling OnEvict with [Deleted] for each.
func (c *Cache[K, V]) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		var out []evictee[K, V]
		s.mu.Lock()
		if c.onEvict != nil {
			for _, n := range s.lru.Values() {
				if n.err == nil {
					out = append(out, evictee[K, V]{n, Deleted})
				}
			}
		}
		s.lru.Purge()
		s.tab.Store(newTable[K, V](8))
		c.budget.entries.Add(-int64(s.count))
		c.budget.bytes.Add(-s.bytes)
		s.count, s.bytes = 0, 0
		s.mu.Unlock()
		c.notify(out)
	}
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	st := Stats{}
	st.Hits, st.Misses = c.stats.sum()
	st = Stats{
		Hits:       st.Hits,
		Misses:     st.Misses,
		Loads:      c.loads.Load(),
		LoadErrors: c.loadErrors.Load(),
		Entries:    int(c.budget.entries.Load()),
		Bytes:      c.budget.bytes.Load(),
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Evictions += s.evictions
		st.Expirations += s.expirations
		s.mu.Unlock()
	}
	return st
}

// Close stops the cache's background work: it cancels the context of
// running loads and refreshes and waits for them to return. The entries
// stay readable; GetOrLoad returns [ErrClosed] afterwards. Close is
// idempotent.
func (c *Cache[K, V]) Close() error {
	c.mu.Lock()
	wasClosed := c.closed
	c.closed = true
	c.mu.Unlock()
	if !wasClosed && c.coarse.Load() {
		c.coarse.Store(false) // now() falls back to time.Since
		coarseStop()
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
	if c.onEvict == nil {
		return
	}
	for _, e := range out {
		if e.n.err == nil {
			c.onEvict(e.n.key, e.n.value, e.reason)
		}
	}
}
