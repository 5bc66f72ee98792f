package thumbnail

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrOverloaded reports that a render found no room in the queue, or
// waited longer than QueueTimeout for a slot (503 with Retry-After).
var ErrOverloaded = errors.New("thumbnail: overloaded, try again shortly")

// heavyPixels is the decoding cost, in pixels, above which a render is
// heavy: heavy renders never take the last free slot, and wait in a line
// of their own that is at most half the queue. A 12-megapixel JPEG scaled
// to 1024 px costs 3 M; a 7000×7000 PNG costs 49 M.
const heavyPixels = 8_000_000

// perSourceLine is how many renders of one source may be running or
// waiting at once; more get ErrOverloaded. Renders of one source also run
// one at a time, so that a failure it causes is remembered before the next
// one starts.
const perSourceLine = 8

// queue hands out render slots so that no source and no class of input can
// take them all.
//
//   - At most limit renders run at once.
//   - Heavy renders (cost above heavyPixels) hold at most limit-1 slots
//     when limit > 1: one slot is always left for light work.
//   - Waiters are served cheapest first, in arrival order among equals;
//     heavy ones may fill at most half of the line.
//   - One source has at most perSourceLine renders in the queue and at
//     most one running.
//
// A waiter gives up after timeout or when its context ends.
type queue struct {
	limit, heavyLimit int
	size, heavySize   int
	timeout           time.Duration

	mu           sync.Mutex
	running      int
	heavyRunning int
	heavyWaiting int
	seq          uint64
	waiting      []*ticket // sorted by (cost, seq)
	sources      map[string]*sourceLine
}

type sourceLine struct {
	queued  int // running or waiting
	running bool
}

// ticket is one render's place in the queue.
type ticket struct {
	q      *queue
	source string
	cost   int64
	heavy  bool
	seq    uint64
	ready  chan struct{} // closed when the slot is granted
}

func newQueue(limit, size int, timeout time.Duration) *queue {
	return &queue{
		limit:      limit,
		heavyLimit: max(1, limit-1),
		size:       size,
		heavySize:  max(1, size/2),
		timeout:    timeout,
		sources:    make(map[string]*sourceLine),
	}
}

// acquire takes a render slot for a render of source costing cost pixels,
// waiting in line if none is free. It fails at once with ErrOverloaded when
// there is no room in the line, and later when the wait passes the timeout
// or ctx ends. The caller must call release on the returned ticket.
func (q *queue) acquire(ctx context.Context, source string, cost int64) (*ticket, error) {
	t := &ticket{q: q, source: source, cost: cost, heavy: cost > heavyPixels, ready: make(chan struct{})}
	q.mu.Lock()
	sl := q.sources[source]
	if sl == nil {
		sl = &sourceLine{}
	}
	if q.runnable(t, sl) {
		q.start(t, sl)
		q.sources[source] = sl
		q.mu.Unlock()
		return t, nil
	}
	if len(q.waiting) >= q.size || (t.heavy && q.heavyWaiting >= q.heavySize) || sl.queued >= perSourceLine {
		q.mu.Unlock()
		return nil, ErrOverloaded
	}
	q.seq++
	t.seq = q.seq
	i, _ := slices.BinarySearchFunc(q.waiting, t, compareTickets)
	q.waiting = slices.Insert(q.waiting, i, t)
	if t.heavy {
		q.heavyWaiting++
	}
	sl.queued++
	q.sources[source] = sl
	q.mu.Unlock()

	timer := time.NewTimer(q.timeout)
	defer timer.Stop()
	var err error
	select {
	case <-t.ready:
		return t, nil
	case <-timer.C:
		err = ErrOverloaded
	case <-ctx.Done():
		err = ctx.Err()
	}
	q.mu.Lock()
	select {
	case <-t.ready:
		// The slot came while we were giving up: pass it on.
		q.mu.Unlock()
		t.release()
		return nil, err
	default:
	}
	if i := slices.Index(q.waiting, t); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	if t.heavy {
		q.heavyWaiting--
	}
	q.leave(t.source, sl)
	q.mu.Unlock()
	return nil, err
}

func compareTickets(a, b *ticket) int {
	return cmp.Or(cmp.Compare(a.cost, b.cost), cmp.Compare(a.seq, b.seq))
}

// runnable reports whether t may start now. q.mu is held.
func (q *queue) runnable(t *ticket, sl *sourceLine) bool {
	return q.running < q.limit && (!t.heavy || q.heavyRunning < q.heavyLimit) && !sl.running
}

// start counts t as running. q.mu is held.
func (q *queue) start(t *ticket, sl *sourceLine) {
	q.running++
	if t.heavy {
		q.heavyRunning++
	}
	sl.running = true
	if t.seq == 0 { // never waited: not counted in the line yet
		sl.queued++
	}
}

// leave takes one render of source out of its line. q.mu is held.
func (q *queue) leave(source string, sl *sourceLine) {
	sl.queued--
	if sl.queued == 0 {
		delete(q.sources, source)
	}
}

// release frees t's slot and grants it, and any other slot now usable, to
// the cheapest waiters that may run.
func (t *ticket) release() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running--
	if t.heavy {
		q.heavyRunning--
	}
	sl := q.sources[t.source]
	sl.running = false
	q.leave(t.source, sl)
	for i := 0; i < len(q.waiting) && q.running < q.limit; {
		w := q.waiting[i]
		wsl := q.sources[w.source]
		if !q.runnable(w, wsl) {
			i++
			continue
		}
		q.waiting = slices.Delete(q.waiting, i, i+1)
		if w.heavy {
			q.heavyWaiting--
		}
		q.start(w, wsl)
		close(w.ready)
	}
}

// stats returns how many renders run and wait.
func (q *queue) stats() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.waiting)
}
