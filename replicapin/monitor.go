package replicapin

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"time"
)

// node is one server and what its monitor last learnt about it.
type node struct {
	name  string
	db    *sql.DB
	read  func(context.Context, *sql.DB) (Position, error)
	state atomic.Pointer[nodeState]
	reads atomic.Uint64
	// poke asks the monitor to poll at once; a non-nil channel sent on it
	// is closed when that poll's result is in state.
	poke chan chan struct{}
}

// nodeState is immutable once stored.
type nodeState struct {
	pos   Position
	known bool // pos has been read at least once; kept while the node is down
	up    bool
	err   error
}

var errNotPolled = errors.New("replicapin: not polled yet")

func newNode(name string, db *sql.DB, read func(context.Context, *sql.DB) (Position, error)) *node {
	n := &node{name: name, db: db, read: read, poke: make(chan chan struct{}, 1)}
	n.state.Store(&nodeState{err: errNotPolled})
	return n
}

// pollSoon asks n's monitor to poll now, without waiting for the result.
func (n *node) pollSoon() {
	select {
	case n.poke <- nil:
	default: // a poll is already requested
	}
}

// monitor polls n every interval, and whenever poked, until ctx is
// cancelled (by Close).
func (db *DB) monitor(ctx context.Context, n *node) {
	defer db.wg.Done()
	t := time.NewTicker(db.interval)
	defer t.Stop()
	db.poll(ctx, n)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.poll(ctx, n)
		case done := <-n.poke:
			db.poll(ctx, n)
			if done != nil {
				close(done)
			}
		}
	}
}

// poll reads n's position once and records the result. A failed poll keeps
// the last known position: positions only grow, so it is still a lower
// bound for when the node comes back.
func (db *DB) poll(ctx context.Context, n *node) {
	pctx, cancel := context.WithTimeout(ctx, db.timeout)
	pos, err := n.read(pctx, n.db)
	cancel()
	if ctx.Err() != nil {
		return // closing: keep the last state rather than record "canceled"
	}
	s := &nodeState{pos: pos, known: true, up: true}
	if err != nil {
		old := n.state.Load()
		s = &nodeState{pos: old.pos, known: old.known, err: err}
	}
	n.state.Store(s)
}
