package localcache

import (
	"sync"
	"sync/atomic"

	"github.com/sharednothing/sharednothing/internal/flight"
)

// shard is one lock's worth of a Cache. Readers use tab without the lock;
// writers hold mu.
//
// tab is the shard's one index: a hand-written copy-on-write hash table,
// kept because it measured well beyond the noise against the plain
// alternatives. Parallel Zipf hits over 16k string keys (BenchmarkGetZipf,
// BenchmarkGetOrLoadZipf; -cpu 2,8; -count 10, variants interleaved run by
// run on a shared 2-core VM; benchstat medians, spreads ±20-60 %) took
// +59 % to +97 % longer with a map under a sync.RWMutex per shard (RLock
// writes the lock word, which the other core must then fetch; p <= 0.018
// in 5 of 6 cells) and +38 % to +88 % longer with a sync.Map per shard
// (p <= 0.023 in all 6), which would also have missed the 3× lru.Cache
// target. Recency is an intrusive list through the nodes, touched only
// under mu (it replaced a simplelru.LRU, which kept a second map).
//
// hits and misses are plain per-shard atomic counters on their own cache
// line. Against the counters they replaced (16×GOMAXPROCS stripes picked by
// the goroutine's stack address through unsafe) they measured within the
// noise: geomean +15 % (n=10) and +4 % (n=20), no cell with p < 0.09. One
// pair of counters for the whole cache did not: +73 % to +139 %, p <= 0.009
// in every cell, as both cores then write one cache line on every hit.
type shard[K comparable, V any] struct {
	tab atomic.Pointer[table[K, V]]
	_   [56]byte // hits write their own cache line, not the one readers load tab from

	hits, misses atomic.Uint64
	_            [48]byte

	idx         int
	mu          sync.Mutex
	lru         node[K, V] // sentinel: lru.next is the most recently used entry, lru.prev the least
	count       int        // entries in this shard
	bytes       int64      // their cost
	budget      *budget
	evictions   uint64
	expirations uint64
	discarded   uint64 // loads not stored because their key was invalidated

	fills  map[K]*fill // keys with loads running, under mu
	flight flight.Group[K, V]

	_ [64]byte // keep neighbouring shards off this one's cache lines
}

// fill tracks the loads of one key that are running. gen counts the writes,
// deletes and purges of the key since the first of them started; a load
// whose starting gen differs at its end saw data that is out of date.
type fill struct {
	gen   uint64
	loads int
}

// fillRef is one load's claim on its key's fill.
type fillRef struct {
	f         *fill
	gen       uint64
	supersede bool // storing its result invalidates the other loads running
}

func (s *shard[K, V]) init(idx int, b *budget) {
	s.idx = idx
	s.budget = b
	s.clearLocked()
}

// clearLocked empties the shard (the caller settles the budget).
func (s *shard[K, V]) clearLocked() {
	s.tab.Store(newTable[K, V](8))
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	s.count, s.bytes = 0, 0
}

// beginFillLocked registers a load of key starting now.
func (s *shard[K, V]) beginFillLocked(key K) *fillRef {
	f := s.fills[key]
	if f == nil {
		if s.fills == nil {
			s.fills = make(map[K]*fill)
		}
		f = &fill{}
		s.fills[key] = f
	}
	f.loads++
	return &fillRef{f: f, gen: f.gen}
}

// endFillLocked unregisters the load fl of key and reports whether its
// result may be stored: whether key was not invalidated while it ran.
func (s *shard[K, V]) endFillLocked(key K, fl *fillRef) bool {
	fl.f.loads--
	if fl.f.loads == 0 {
		delete(s.fills, key)
	}
	if fl.f.gen != fl.gen {
		s.discarded++
		return false
	}
	return true
}

// invalidateLocked makes the loads of key now running unfit to store.
func (s *shard[K, V]) invalidateLocked(key K) {
	if f := s.fills[key]; f != nil {
		f.gen++
	}
}

// table is a hash table of copy-on-write chains. A writer replaces a bucket's
// chain (copying the part before a change) and grows by building a new
// table, so a reader holding an old table or chain always sees a consistent
// one.
type table[K comparable, V any] struct {
	buckets []atomic.Pointer[link[K, V]]
	mask    uint64
}

// link is one chain element. Only n changes after it is published: a Set
// on a present key swaps the node in place.
type link[K comparable, V any] struct {
	hash uint64
	n    atomic.Pointer[node[K, V]]
	next *link[K, V]
}

func newLink[K comparable, V any](h uint64, n *node[K, V], next *link[K, V]) *link[K, V] {
	l := &link[K, V]{hash: h, next: next}
	l.n.Store(n)
	return l
}

func newTable[K comparable, V any](size int) *table[K, V] {
	return &table[K, V]{buckets: make([]atomic.Pointer[link[K, V]], size), mask: uint64(size - 1)}
}

// find returns key's node or nil. It takes no lock.
func (s *shard[K, V]) find(h uint64, key K) *node[K, V] {
	t := s.tab.Load()
	for l := t.buckets[h&t.mask].Load(); l != nil; l = l.next {
		if l.hash == h {
			if n := l.n.Load(); n.key == key {
				return n
			}
		}
	}
	return nil
}

// touch marks n as read since the evictor last looked at it, writing only
// when the flag is clear.
func (n *node[K, V]) touch() {
	if n.ref.Load() == 0 {
		n.ref.Store(1)
	}
}

// budget is the cache-wide entry and byte accounting. Space is reserved
// with compare-and-swap before an entry is published, so the totals never
// pass the bounds, not even for a moment.
type budget struct {
	maxEntries, maxBytes int64 // 0: no bound
	_                    [48]byte
	entries, bytes       atomic.Int64
	_                    [48]byte
}

// reserve takes room for dc more entries and db more bytes, or reports that
// it does not fit.
func (b *budget) reserve(dc, db int64) bool {
	for dc > 0 {
		cur := b.entries.Load()
		if b.maxEntries > 0 && cur+dc > b.maxEntries {
			return false
		}
		if b.entries.CompareAndSwap(cur, cur+dc) {
			break
		}
	}
	if db <= 0 {
		b.bytes.Add(db)
		return true
	}
	for {
		cur := b.bytes.Load()
		if b.maxBytes > 0 && cur+db > b.maxBytes {
			b.entries.Add(-dc)
			return false
		}
		if b.bytes.CompareAndSwap(cur, cur+db) {
			return true
		}
	}
}

// pushFrontLocked puts n at the most recently used end of the list.
func (s *shard[K, V]) pushFrontLocked(n *node[K, V]) {
	n.prev, n.next = &s.lru, s.lru.next
	s.lru.next.prev = n
	s.lru.next = n
}

// unlinkLocked takes n out of the list.
func unlinkLocked[K comparable, V any](n *node[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

// linkLocked publishes n in place of old (nil if the key is new) as the
// most recently used entry. The caller has reserved its room in the budget.
func (s *shard[K, V]) linkLocked(n, old *node[K, V]) {
	t := s.tab.Load()
	b := &t.buckets[n.hash&t.mask]
	if old != nil {
		for l := b.Load(); l != nil; l = l.next {
			if l.n.Load() == old {
				l.n.Store(n)
				break
			}
		}
		unlinkLocked(old)
		s.bytes -= old.cost
	} else {
		b.Store(newLink(n.hash, n, b.Load()))
		s.count++
		if s.count > len(t.buckets) {
			s.grow(t)
		}
	}
	s.bytes += n.cost
	s.pushFrontLocked(n)
}

// without returns the chain head without the link for n. Links after it
// are shared, links before it copied, so readers of the old chain are
// undisturbed.
func without[K comparable, V any](head *link[K, V], n *node[K, V]) *link[K, V] {
	if head == nil {
		return nil
	}
	if head.n.Load() == n {
		return head.next
	}
	return newLink(head.hash, head.n.Load(), without(head.next, n))
}

// grow doubles the table.
func (s *shard[K, V]) grow(old *table[K, V]) {
	t := newTable[K, V](2 * len(old.buckets))
	for i := range old.buckets {
		for l := old.buckets[i].Load(); l != nil; l = l.next {
			b := &t.buckets[l.hash&t.mask]
			b.Store(newLink(l.hash, l.n.Load(), b.Load()))
		}
	}
	s.tab.Store(t)
}

// removeLocked unlinks n, which must be the current node for its key, and
// returns its room to the budget.
func (s *shard[K, V]) removeLocked(n *node[K, V]) {
	t := s.tab.Load()
	b := &t.buckets[n.hash&t.mask]
	b.Store(without(b.Load(), n))
	unlinkLocked(n)
	s.count--
	s.bytes -= n.cost
	s.budget.entries.Add(-1)
	s.budget.bytes.Add(-n.cost)
}

// evictOneLocked removes the least recently used entry other than keep. An
// entry read since it was last looked at gets a second chance: its flag is
// cleared and it moves to the front instead. It reports false if there is
// nothing to evict.
func (s *shard[K, V]) evictOneLocked(keep *node[K, V], now int64) (evictee[K, V], bool) {
	chances := s.count // bound the second chances, as readers may set flags again
	for {
		n := s.lru.prev
		if n == &s.lru || (n == keep && s.count == 1) {
			return evictee[K, V]{}, false
		}
		if n == keep || (chances > 0 && n.ref.Load() != 0) {
			chances--
			n.ref.Store(0)
			unlinkLocked(n)
			s.pushFrontLocked(n)
			continue
		}
		s.removeLocked(n)
		return s.left(n, Evicted, now), true
	}
}

// left records that n left for reason, or as Expired if the evictor took it
// after it expired, and returns the evictee.
func (s *shard[K, V]) left(n *node[K, V], reason EvictReason, now int64) evictee[K, V] {
	if reason == Evicted && n.expires != 0 && now >= n.expires {
		reason = Expired
	}
	switch {
	case reason == Expired:
		s.expirations++
	case reason == Evicted && n.err == nil:
		s.evictions++
	}
	return evictee[K, V]{n, reason}
}
