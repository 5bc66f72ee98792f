package coherent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sharednothing/sharednothing/internal/reqstate"
)

var (
	errEmptyName = errors.New("coherent: cache name must not be empty")
	errDuplicate = errors.New("coherent: a cache with this name is already registered")
)

// ErrBadURL is returned by Send and SendTx for a [Pages.URL] item that is
// not an absolute URL: the response cache could not purge it.
var ErrBadURL = errors.New("coherent: Pages.URL needs an absolute URL, like https://example.com/path")

// check rejects items no instance could apply.
func check(items []Item) error {
	for _, it := range items {
		if it.op == 'u' {
			if u, err := url.Parse(it.arg); err != nil || u.Host == "" {
				return ErrBadURL
			}
		}
	}
	return nil
}

// Execer runs a statement; *sql.Tx, *sql.Conn and *sql.DB implement it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Send notifies every instance, this one included, that items changed, and
// applies them here before it returns. Call it right after the writing
// transaction committed: the notification carries the primary's position
// read then, which covers the write. Concurrent Sends are batched into one
// statement (several notifications when the items exceed one payload).
//
// The items are applied to this instance's caches whatever happens: with
// the position when the notification went out, without it (no
// position-aware refill here) when it failed. An error means the other
// instances may not have heard: they serve what they hold until it
// expires, or until their next flush. The write itself stands; a caller
// usually logs the error and answers the request as if it had succeeded.
// When ctx is done before the batch went out, Send returns ctx.Err() and
// the batch still goes.
//
// In a request, Send also makes the rest of the request read through the
// caches (see [Cache.GetOrLoad]).
func (b *Bus) Send(ctx context.Context, items ...Item) error {
	if len(items) == 0 {
		return nil
	}
	if err := check(items); err != nil {
		return err
	}
	bypass(ctx)
	if err := b.send(ctx, items); err != nil {
		b.sendErrors.Add(1)
		return err
	}
	return nil
}

// SendTx queues a notification of items in the writing transaction tx, so
// that it goes out if and only if tx commits, in commit order. It carries
// no position: inside the transaction the commit's position does not exist
// yet (pg_current_wal_insert_lsn() there is short of the commit record), so
// each receiving instance reads the primary's position when the
// notification arrives, which is after the commit. That costs one query per
// instance and notification; [Bus.Send] after the commit costs none.
//
// Unlike Send, SendTx does not invalidate this instance's caches at once:
// they are invalidated when the notification comes back, a few
// milliseconds after the commit. The request that wrote reads through the
// caches for the rest of the request, and replicapin pins its client, so
// the writer still reads its write.
func (b *Bus) SendTx(ctx context.Context, tx Execer, items ...Item) error {
	if len(items) == 0 {
		return nil
	}
	if err := check(items); err != nil {
		return err
	}
	bypass(ctx)
	bodies := bodies(items)
	args := []any{b.channel}
	var q strings.Builder
	q.WriteString("SELECT pg_notify($1, x) FROM (VALUES ")
	for i, body := range bodies {
		if i > 0 {
			q.WriteString(", ")
		}
		args = append(args, version+" -"+body)
		fmt.Fprintf(&q, "($%d::text)", len(args))
	}
	q.WriteString(") v(x)")
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		b.sendErrors.Add(1)
		return fmt.Errorf("coherent: notify: %w", err)
	}
	b.sent.Add(uint64(len(bodies)))
	return nil
}

// bypass makes a request read through the caches from now on.
func bypass(ctx context.Context) {
	if s := reqstate.From(ctx); s != nil {
		s.Bypass()
	}
}

// sendReq is one Send waiting for its batch.
type sendReq struct {
	items []Item
	done  chan struct{}
	err   error
}

// send sends items with whatever other Sends are waiting, and applies them
// to this instance's caches. Batching is group commit without a
// goroutine of its own: a Send that finds no statement in flight sends
// its items and everything queued meanwhile; one that finds a statement in
// flight queues its items for the next one.
func (b *Bus) send(ctx context.Context, items []Item) error {
	req := &sendReq{items: items, done: make(chan struct{})}
	b.sendMu.Lock()
	if b.ctx.Err() != nil {
		b.sendMu.Unlock()
		b.apply(items, Position{}, false)
		return ErrClosed
	}
	b.queue = append(b.queue, req)
	lead := !b.sending
	b.sending = true
	b.sendMu.Unlock()
	if lead {
		b.drain(req)
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain sends what is queued, in batches. With own set, it returns once
// own is done, handing what is still queued to a goroutine, so that a
// caller does not keep sending for others; with own nil, it returns when
// the queue is empty.
func (b *Bus) drain(own *sendReq) {
	for {
		b.sendMu.Lock()
		q := b.queue
		b.queue = nil
		if len(q) == 0 {
			b.sending = false
			b.sendMu.Unlock()
			return
		}
		b.sendMu.Unlock()
		var items []Item
		for _, r := range q {
			items = append(items, r.items...)
		}
		pos, err := b.notify(items)
		b.apply(items, pos, err == nil)
		for _, r := range q {
			r.err = err
			close(r.done)
		}
		if own == nil {
			continue
		}
		select {
		case <-own.done:
			b.sendMu.Lock()
			more := len(b.queue) > 0
			if !more {
				b.sending = false
			}
			b.sendMu.Unlock()
			if more {
				// It ends when the queue is empty; after Close,
				// notify fails at once with ErrClosed.
				go b.drain(nil)
			}
			return
		default:
		}
	}
}

// maxBatch bounds the notifications one statement sends.
const maxBatch = 64

// notify sends items in as few notifications as the payload limit allows,
// each headed by the primary's current position, and returns it.
func (b *Bus) notify(items []Item) (Position, error) {
	if b.ctx.Err() != nil {
		return Position{}, ErrClosed
	}
	all := bodies(items)
	origin := "\n" + Item{op: 'o', cache: b.id, arg: "s"}.String()
	for i := range all {
		all[i] = origin + all[i]
	}
	var pos Position
	for len(all) > 0 {
		n := min(len(all), maxBatch)
		p, err := b.notifyBatch(all[:n])
		if err != nil {
			return Position{}, fmt.Errorf("coherent: notify: %w", err)
		}
		pos = p
		all = all[n:]
	}
	return pos, nil
}

func (b *Bus) notifyBatch(bodies []string) (Position, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	// The position is read in the statement itself, after the writes the
	// caller committed; the header is built on the server so that it
	// costs no extra round trip.
	args := []any{b.channel}
	var q strings.Builder
	q.WriteString(`SELECT p.l::text, pg_walfile_name(p.l), pg_notify($1, 'c1 ' || substr(pg_walfile_name(p.l), 1, 8) || ' ' || p.l::text || v.x)::text ` +
		`FROM (SELECT pg_current_wal_insert_lsn() AS l) p, (VALUES `)
	for i, body := range bodies {
		if i > 0 {
			q.WriteString(", ")
		}
		args = append(args, body)
		fmt.Fprintf(&q, "($%d::text)", len(args))
	}
	q.WriteString(") v(x)")
	rows, err := b.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return Position{}, err
	}
	defer rows.Close()
	var lsn, file, void string
	for rows.Next() {
		if err := rows.Scan(&lsn, &file, &void); err != nil {
			return Position{}, err
		}
	}
	if err := rows.Err(); err != nil {
		return Position{}, err
	}
	b.sent.Add(uint64(len(bodies)))
	return parsePosition(file, lsn)
}
