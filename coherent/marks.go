package coherent

import (
	"context"
	"net/url"
	"sync/atomic"
	"time"
)

// reg is one registered cache: how to invalidate it, and its marks.
type reg struct {
	name string
	del  func(key string) // a key, or a URL of a response cache
	tag  func(tag string)
	all  func()

	// active is len(marks) plus one for a floor, readable without the
	// lock so loads of unmarked caches cost nothing.
	active atomic.Int64

	// Guarded by Bus.mu.
	marks    map[string]mark // by key, or by URL path for response caches
	floor    mark            // applies to every key of the cache
	hasFloor bool
}

// mark says: loads of this key (or of every key, for a floor) must read at
// pos or later, until every replica has replayed pos or maxLag has passed.
type mark struct {
	pos Position
	at  time.Time
}

// later reports whether p is after q: on a later timeline, or further
// along the same one.
func later(p, q Position) bool {
	return p.Timeline > q.Timeline || p.Timeline == q.Timeline && p.Offset > q.Offset
}

func (b *Bus) markLocked(r *reg, key string, pos Position) {
	if m, ok := r.marks[key]; ok {
		if later(pos, m.pos) {
			m.pos = pos
		}
		m.at = time.Now()
		r.marks[key] = m
		return
	}
	if len(r.marks) >= b.maxMarks {
		// Too many keys to track: one cache-wide mark at the latest
		// position is coarser but just as safe.
		for _, m := range r.marks {
			if later(m.pos, pos) {
				pos = m.pos
			}
		}
		clear(r.marks)
		b.setFloorLocked(r, pos)
		r.active.Store(1)
		return
	}
	if r.marks == nil {
		r.marks = map[string]mark{}
	}
	r.marks[key] = mark{pos: pos, at: time.Now()}
	r.active.Add(1)
}

func (b *Bus) setFloorLocked(r *reg, pos Position) {
	if !r.hasFloor {
		r.hasFloor = true
		r.floor = mark{pos: pos, at: time.Now()}
		r.active.Add(1)
		return
	}
	if later(pos, r.floor.pos) {
		r.floor.pos = pos
	}
	r.floor.at = time.Now()
}

// minPosition returns the position a load of key in r must read at, if any.
func (b *Bus) minPosition(r *reg, key string) (Position, bool) {
	if r.active.Load() == 0 {
		return Position{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var pos Position
	found := false
	now := time.Now()
	if r.hasFloor {
		if b.expired(r.floor, now) {
			r.hasFloor = false
			r.active.Add(-1)
		} else {
			pos, found = r.floor.pos, true
		}
	}
	if m, ok := r.marks[key]; ok {
		if b.expired(m, now) {
			delete(r.marks, key)
			r.active.Add(-1)
		} else if !found || later(m.pos, pos) {
			pos, found = m.pos, true
		}
	}
	return pos, found
}

// expired reports whether a mark no longer constrains loads.
func (b *Bus) expired(m mark, now time.Time) bool {
	return now.Sub(m.at) > b.maxLag || b.replicas.Replayed(m.pos)
}

// sweep drops marks that no longer constrain loads, so that the marks of
// keys nobody loads again do not pile up.
func (b *Bus) sweep() {
	if b.replicas == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for _, r := range b.regs {
		if r.active.Load() == 0 {
			continue
		}
		for k, m := range r.marks {
			if b.expired(m, now) {
				delete(r.marks, k)
				r.active.Add(-1)
			}
		}
		if r.hasFloor && b.expired(r.floor, now) {
			r.hasFloor = false
			r.active.Add(-1)
		}
	}
}

// newestMark returns the latest position of any mark, the best guess of
// the primary's position when it cannot be read.
func (b *Bus) newestMark() Position {
	b.mu.Lock()
	defer b.mu.Unlock()
	var p Position
	for _, r := range b.regs {
		if r.hasFloor && later(r.floor.pos, p) {
			p = r.floor.pos
		}
		for _, m := range r.marks {
			if later(m.pos, p) {
				p = m.pos
			}
		}
	}
	return p
}

// atLeast returns ctx made to read at the position a load of key in r
// must see, or ctx itself when there is none.
//
// While the listener is disconnected, marks are not applied: the caches
// are then only TTL-bounded anyway (whatever was refilled is flushed on
// reconnect), and the disconnection usually means the primary is down, so
// a read sent there to honour a mark would fail the request.
func (b *Bus) atLeast(ctx context.Context, r *reg, key string) context.Context {
	if b.replicas == nil || !b.connected.Load() {
		return ctx
	}
	if p, ok := b.minPosition(r, key); ok {
		return b.replicas.AtLeast(ctx, p)
	}
	return ctx
}

// urlPath is the part of a purged URL that marks are kept by: its path,
// whatever scheme, host or query it came with, so that every variant of it
// refills at the purge's position (more than needed, never less).
func urlPath(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// register adds a cache under a name unique within the Bus.
func (b *Bus) register(r *reg) error {
	if r.name == "" {
		return errEmptyName
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.regs[r.name]; dup {
		return errDuplicate
	}
	b.regs[r.name] = r
	return nil
}
