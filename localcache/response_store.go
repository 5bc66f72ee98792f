package localcache

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// store holds the response cache's entries: one per primary key (the URL),
// each with up to maxVariants stored responses, in least-recently-used
// order (golang-lru's simplelru, unbounded in count: the bound is bytes,
// enforced here), plus an index from tag to keys. One mutex guards it all:
// a hit holds it for a map lookup and a list move.
//
// Entries and responses are never modified once published: a change
// replaces the entry's variants slice, so readers may keep what they got.
type store struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	lru   *simplelru.LRU[string, *entry]
	tags  map[string]map[string]struct{}

	// gen counts purges. A handler run remembers it when it starts, and its
	// response is not stored if a purge happened meanwhile: the response may
	// have been made from data the purge was meant to drop.
	gen uint64

	evictions uint64
}

type entry struct {
	key      string
	variants []*response // newest first
	passTill time.Time   // hit-for-pass: not storable lately, don't coalesce
	size     int64
}

// entryOverhead is what an entry and each stored response count against
// MaxBytes beyond key, body and header bytes: maps, list element, structs.
const entryOverhead = 512

func newStore(max int64) *store {
	lru, _ := simplelru.NewLRU[string, *entry](math.MaxInt, nil) // only fails for a size <= 0
	return &store{max: max, lru: lru, tags: make(map[string]map[string]struct{})}
}

// get returns the variants stored for key (nil if none) and whether key is
// marked hit-for-pass, marking the entry recently used.
func (s *store) get(key string, now time.Time) ([]*response, bool) {
	s.mu.Lock()
	e, ok := s.lru.Get(key)
	if !ok {
		s.mu.Unlock()
		return nil, false
	}
	v, pass := e.variants, now.Before(e.passTill)
	s.mu.Unlock()
	return v, pass
}

func (s *store) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// put stores resp under key, replacing variants it supersedes: those with
// the same selecting header values (resp.varyKey under resp.vary) and those
// listed in drop. It does nothing if a purge happened since gen, or if resp
// alone exceeds the byte bound. It reports whether it stored.
func (s *store) put(key string, resp *response, gen uint64, drop ...*response) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return false
	}
	size := resp.cost()
	if size+int64(len(key))+entryOverhead > s.max {
		return false
	}
	e, ok := s.lru.Get(key)
	if !ok {
		e = &entry{key: key, size: int64(len(key)) + entryOverhead}
		s.lru.Add(key, e)
		s.bytes += e.size
	}
	variants := make([]*response, 0, len(e.variants)+1)
	variants = append(variants, resp)
	for _, v := range e.variants {
		if len(variants) == maxVariants || v.varyKey == resp.varyKey && slices.Equal(v.vary, resp.vary) || slices.Contains(drop, v) {
			s.unindex(key, v)
			e.size -= v.cost()
			s.bytes -= v.cost()
			continue
		}
		variants = append(variants, v)
	}
	e.variants = variants
	e.passTill = time.Time{}
	e.size += size
	s.bytes += size
	for _, t := range resp.tags {
		keys := s.tags[t]
		if keys == nil {
			keys = make(map[string]struct{})
			s.tags[t] = keys
		}
		keys[key] = struct{}{}
	}
	for s.bytes > s.max {
		_, oldest, _ := s.lru.GetOldest()
		if oldest == e && s.lru.Len() == 1 {
			break
		}
		s.removeEntry(oldest)
		s.evictions++
	}
	return true
}

// markPass records that key's last response was not storable, unless a
// response is stored for it.
func (s *store) markPass(key string, till time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.lru.Peek(key); ok {
		if len(e.variants) == 0 {
			e.passTill = till
		}
		return
	}
	e := &entry{key: key, size: int64(len(key)) + entryOverhead, passTill: till}
	s.lru.Add(key, e)
	s.bytes += e.size
	for s.bytes > s.max && s.lru.Len() > 1 {
		_, oldest, _ := s.lru.GetOldest()
		s.removeEntry(oldest)
	}
}

// purgeKey drops every response stored for key and returns how many.
func (s *store) purgeKey(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	e, ok := s.lru.Peek(key)
	if !ok {
		return 0
	}
	n := len(e.variants)
	s.removeEntry(e)
	return n
}

// purgeTag drops every response carrying tag and returns how many.
func (s *store) purgeTag(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	n := 0
	for key := range s.tags[tag] {
		if e, ok := s.lru.Peek(key); ok {
			n += s.dropVariants(e, func(v *response) bool { return slices.Contains(v.tags, tag) })
		}
	}
	delete(s.tags, tag)
	return n
}

// purgeAll drops everything and returns how many responses that was.
func (s *store) purgeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	n := 0
	for _, e := range s.lru.Values() {
		n += len(e.variants)
	}
	s.lru.Purge()
	clear(s.tags)
	s.bytes = 0
	return n
}

// dropVariants removes e's variants for which drop is true, and e itself
// when none is left. It returns how many it removed.
func (s *store) dropVariants(e *entry, drop func(*response) bool) int {
	keep := make([]*response, 0, len(e.variants))
	n := 0
	for _, v := range e.variants {
		if drop(v) {
			s.unindex(e.key, v)
			e.size -= v.cost()
			s.bytes -= v.cost()
			n++
		} else {
			keep = append(keep, v)
		}
	}
	if len(keep) == 0 {
		s.removeEntry(e)
	} else {
		e.variants = keep
	}
	return n
}

func (s *store) removeEntry(e *entry) {
	s.lru.Remove(e.key)
	for _, v := range e.variants {
		s.unindex(e.key, v) // e is out of the LRU: no variant keeps a tag
	}
	s.bytes -= e.size
}

// unindex removes key from the tag index of v's tags, unless another
// variant of key still carries the tag.
func (s *store) unindex(key string, v *response) {
	for _, t := range v.tags {
		still := false
		if e, ok := s.lru.Peek(key); ok {
			for _, o := range e.variants {
				if o != v && slices.Contains(o.tags, t) {
					still = true
				}
			}
		}
		if !still {
			delete(s.tags[t], key)
			if len(s.tags[t]) == 0 {
				delete(s.tags, t)
			}
		}
	}
}

func (s *store) stats() (entries int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.lru.Values() {
		entries += len(e.variants)
	}
	return entries, s.bytes
}
