package thumbnail

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrOverloaded reports that the render queue is full or that a render
// waited longer than QueueTimeout for a slot (503 with Retry-After).
var ErrOverloaded = errors.New("thumbnail: overloaded, try again shortly")

// queue admits at most limit concurrent holders and at most size waiters,
// served first in, first out. A waiter that times out leaves the line.
type queue struct {
	mu      sync.Mutex
	limit   int
	size    int
	running int
	waiters list.List // of chan struct{}; closed when the slot is handed over
	timeout time.Duration
	after   func(time.Duration) (<-chan time.Time, func() bool) // a timer; tests replace it
	onWait  func()                                              // test hook: a waiter joined the line
}

func newQueue(limit, size int, timeout time.Duration) *queue {
	return &queue{limit: limit, size: size, timeout: timeout, after: func(d time.Duration) (<-chan time.Time, func() bool) {
		t := time.NewTimer(d)
		return t.C, t.Stop
	}}
}

// acquire takes a slot, waiting in line if all are busy. It fails at once
// with ErrOverloaded when the line is full, and later when the wait passes
// the timeout or ctx ends.
func (q *queue) acquire(ctx context.Context) error {
	q.mu.Lock()
	if q.running < q.limit && q.waiters.Len() == 0 {
		q.running++
		q.mu.Unlock()
		return nil
	}
	if q.waiters.Len() >= q.size {
		q.mu.Unlock()
		return ErrOverloaded
	}
	ready := make(chan struct{})
	elem := q.waiters.PushBack(ready)
	q.mu.Unlock()
	if q.onWait != nil {
		q.onWait()
	}

	var timeout <-chan time.Time
	if q.timeout > 0 {
		c, stop := q.after(q.timeout)
		defer stop()
		timeout = c
	}
	var err error
	select {
	case <-ready:
		return nil
	case <-timeout:
		err = ErrOverloaded
	case <-ctx.Done():
		err = ctx.Err()
	}
	q.mu.Lock()
	select {
	case <-ready:
		// The slot arrived while we were giving up: pass it on.
		q.mu.Unlock()
		q.release()
	default:
		q.waiters.Remove(elem)
		q.mu.Unlock()
	}
	return err
}

// release frees a slot, handing it straight to the longest waiter if any.
func (q *queue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if front := q.waiters.Front(); front != nil {
		q.waiters.Remove(front)
		close(front.Value.(chan struct{}))
		return
	}
	q.running--
}

// stats returns running and waiting counts.
func (q *queue) stats() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, q.waiters.Len()
}
