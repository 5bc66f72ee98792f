package localcache

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// shard is one lock's worth of a Cache. Readers use tab without the lock:
// its chains are immutable lists swapped in whole by writers, which hold mu.
// lru keeps the eviction order and is touched only under mu.
type shard[K comparable, V any] struct {
	tab atomic.Pointer[table[K, V]]

	idx         int
	mu          sync.Mutex
	lru         *simplelru.LRU[K, *node[K, V]]
	count       int   // entries in this shard
	bytes       int64 // their cost
	budget      *budget
	evictions   uint64
	expirations uint64

	calls map[K]*call[V] // loads in flight, under mu

	_ [64]byte // keep neighbouring shards off this one's cache lines
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

// find returns key's node or nil, without locking.
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

// findLocked is find for a caller holding mu.
func (s *shard[K, V]) findLocked(h uint64, key K) *node[K, V] { return s.find(h, key) }

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

// linkLocked publishes n in place of old (nil if the key is new). The
// caller has reserved its room in the budget.
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
		s.bytes -= old.cost
	} else {
		b.Store(newLink(n.hash, n, b.Load()))
		s.count++
		if s.count > len(t.buckets) {
			s.grow(t)
		}
	}
	s.bytes += n.cost
	s.lru.Add(n.key, n)
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
	s.lru.Remove(n.key)
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
		key, n, ok := s.lru.GetOldest()
		if !ok || (n == keep && s.count == 1) {
			return evictee[K, V]{}, false
		}
		if n == keep || (chances > 0 && n.ref.Load() != 0) {
			chances--
			n.ref.Store(0)
			s.lru.Get(key) // move to front
			continue
		}
		s.removeLocked(n)
		return s.left(n, Evicted, now), true
	}
}

// counters counts hits and misses without making cores share a cache
// line: each count goes to the stripe picked by the calling goroutine's
// stack address. Goroutine stacks are separate allocations, so goroutines
// running at the same time almost always land on different stripes (there
// are 16×GOMAXPROCS of them), and picking one costs a multiply, not a
// sync.Pool round trip. A goroutine whose stack moves just changes stripe;
// the sums stay exact.
type counters struct {
	stripes []stripe
	shift   uint
}

type stripe struct {
	hits, misses atomic.Uint64
	_            [48]byte
}

func newCounters(n int) *counters {
	size := 1
	for size < n {
		size <<= 1
	}
	return &counters{stripes: make([]stripe, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

// stripe returns the calling goroutine's stripe.
func (c *counters) stripe() *stripe {
	var marker byte
	sp := uint64(uintptr(unsafe.Pointer(&marker))) >> 12 // below: same stack
	return &c.stripes[(sp*0x9E3779B97F4A7C15)>>c.shift&uint64(len(c.stripes)-1)]
}

func (c *counters) hit()  { c.stripe().hits.Add(1) }
func (c *counters) miss() { c.stripe().misses.Add(1) }

func (c *counters) sum() (hits, misses uint64) {
	for i := range c.stripes {
		hits += c.stripes[i].hits.Load()
		misses += c.stripes[i].misses.Load()
	}
	return hits, misses
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
