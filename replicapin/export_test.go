package replicapin

import (
	"context"
	"time"
)

// PollNow has every monitor of db poll once more and waits until all those
// polls are recorded, so a test can make the DB see a change without
// waiting for a tick.
func (db *DB) PollNow(ctx context.Context) error {
	var dones []chan struct{}
	for _, n := range append([]*node{db.primon}, db.replicas...) {
		done := make(chan struct{})
		select {
		case n.poke <- done:
		case <-ctx.Done():
			return ctx.Err()
		}
		dones = append(dones, done)
	}
	for _, done := range dones {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Pin is a pin cookie's content, for tests that forge or inspect cookies.
type Pin struct {
	Pos     Position
	Unknown bool
	Expires time.Time
}

// SealPin seals p as the value of a pin cookie called name, with key.
func SealPin(key []byte, name string, p Pin) string {
	s, err := newSealer(name, key)
	if err != nil {
		panic(err)
	}
	return s.seal(pin{pos: p.Pos, unknown: p.Unknown, expires: p.Expires.UnixMilli()})
}

// OpenPin checks and decodes a pin cookie value as db would at now.
func (db *DB) OpenPin(value string, now time.Time) (Pin, error) {
	p, err := db.seal.open(value, now.UnixMilli(), now.Add(db.maxPin).UnixMilli())
	return Pin{Pos: p.pos, Unknown: p.unknown, Expires: time.UnixMilli(p.expires)}, err
}
