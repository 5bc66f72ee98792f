package localcache

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// shard is one lock's worth of a Cache. Readers use tab without the lock:
// its chains are immutable lists swapped in whole by writers, which hold mu.
// lru keeps the eviction order and is touched only under mu.
type shard[K comparable, V any] struct {
	tab atomic.Pointer[table[K, V]]

	mu          sync.Mutex
	lru         *simplelru.LRU[K, *node[K, V]]
	count       int
	bytes       int64
	maxEntries  int64 // 0: no bound; -1: holds nothing
	maxBytes    int64 // 0: no bound; -1: holds nothing
	evictions   uint64
	expirations uint64

	calls map[K]*call[V] // loads in flight, under mu

	stats counters
	_     [64]byte // keep neighbouring shards off this one's cache lines
}

// table is a hash table of immutable chains. A writer replaces a bucket's
// chain (copying the part before a change) and grows by building a new
// table, so a reader holding an old table or chain always sees a consistent
// one.
type table[K comparable, V any] struct {
	buckets []atomic.Pointer[link[K, V]]
	mask    uint64
}

type link[K comparable, V any] struct {
	hash uint64
	n    *node[K, V]
	next *link[K, V]
}

func newTable[K comparable, V any](size int) *table[K, V] {
	return &table[K, V]{buckets: make([]atomic.Pointer[link[K, V]], size), mask: uint64(size - 1)}
}

// find returns key's node or nil, without locking.
func (s *shard[K, V]) find(h uint64, key K) *node[K, V] {
	t := s.tab.Load()
	for l := t.buckets[h&t.mask].Load(); l != nil; l = l.next {
		if l.hash == h && l.n.key == key {
			return l.n
		}
	}
	return nil
}

// findLocked is find for a caller holding mu.
func (s *shard[K, V]) findLocked(h uint64, key K) *node[K, V] { return s.find(h, key) }

// putLocked stores n, replacing the node for its key, and evicts until the
// shard is within its bounds. It appends what left to out.
// If expect is non-nil, n is stored only if expect is still the node for
// the key. now tells expired entries (reason Expired) from live ones.
func (s *shard[K, V]) putLocked(n, expect *node[K, V], now int64, out []evictee[K, V]) []evictee[K, V] {
	if expect != nil && s.find(n.hash, n.key) != expect {
		return out
	}
	if (s.maxBytes != 0 && n.cost > s.maxBytes) || s.maxEntries < 0 {
		// It can never fit; drop it (and the value it would replace, which
		// is now out of date).
		if old := s.find(n.hash, n.key); old != nil {
			s.removeLocked(old)
			out = append(out, s.left(old, Replaced, now))
		}
		return out
	}
	t := s.tab.Load()
	b := &t.buckets[n.hash&t.mask]
	head := b.Load()
	var old *node[K, V]
	for l := head; l != nil; l = l.next {
		if l.hash == n.hash && l.n.key == n.key {
			old = l.n
			break
		}
	}
	if old != nil {
		b.Store(without(head, old, &link[K, V]{hash: n.hash, n: n}))
		s.bytes -= old.cost
		out = append(out, s.left(old, Replaced, now))
	} else {
		b.Store(&link[K, V]{hash: n.hash, n: n, next: head})
		s.count++
		if s.count > len(t.buckets) {
			s.grow(t)
		}
	}
	s.bytes += n.cost
	s.lru.Add(n.key, n)
	return s.evictLocked(now, out)
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

// without returns the chain head with the link for n replaced by repl
// (which may be nil to drop it). Links after n are shared, links before it
// copied.
func without[K comparable, V any](head *link[K, V], n *node[K, V], repl *link[K, V]) *link[K, V] {
	if head == nil {
		return nil
	}
	if head.n == n {
		if repl == nil {
			return head.next
		}
		repl.next = head.next
		return repl
	}
	return &link[K, V]{hash: head.hash, n: head.n, next: without(head.next, n, repl)}
}

// grow doubles the table.
func (s *shard[K, V]) grow(old *table[K, V]) {
	t := newTable[K, V](2 * len(old.buckets))
	for i := range old.buckets {
		for l := old.buckets[i].Load(); l != nil; l = l.next {
			b := &t.buckets[l.hash&t.mask]
			b.Store(&link[K, V]{hash: l.hash, n: l.n, next: b.Load()})
		}
	}
	s.tab.Store(t)
}

// removeLocked unlinks n, which must be the current node for its key.
func (s *shard[K, V]) removeLocked(n *node[K, V]) {
	t := s.tab.Load()
	b := &t.buckets[n.hash&t.mask]
	b.Store(without(b.Load(), n, nil))
	s.lru.Remove(n.key)
	s.count--
	s.bytes -= n.cost
}

// evictLocked removes least recently used entries until the shard is within
// its bounds. An entry read since it was last looked at gets a second
// chance: its flag is cleared and it moves to the front instead.
func (s *shard[K, V]) evictLocked(now int64, out []evictee[K, V]) []evictee[K, V] {
	chances := s.count // bound the second chances, as readers may set flags again
	for (s.maxEntries > 0 && int64(s.count) > s.maxEntries) || (s.maxBytes > 0 && s.bytes > s.maxBytes) {
		key, n, ok := s.lru.GetOldest()
		if !ok {
			break
		}
		if chances > 0 && n.ref.Load() != 0 {
			chances--
			n.ref.Store(0)
			s.lru.Get(key) // move to front
			continue
		}
		s.removeLocked(n)
		out = append(out, s.left(n, Evicted, now))
	}
	return out
}

// counters counts hits and misses.
type counters struct {
	hits, misses atomic.Uint64
}

func (c *counters) hit()  { c.hits.Add(1) }
func (c *counters) miss() { c.misses.Add(1) }
