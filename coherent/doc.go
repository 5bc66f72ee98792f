// Package coherent keeps the per-instance caches of an application
// coherent across its instances and its read replicas, using PostgreSQL's
// LISTEN/NOTIFY as the bus and WAL positions as markers, with no other
// service.
//
// One [Bus] per instance holds one listening connection to the primary.
// Caches are registered with it: typed caches with [NewCache], HTTP
// response caches with [NewPages]. A handler that wrote announces what
// changed with [Bus.Send] right after its transaction committed, or with
// [Bus.SendTx] inside it (delivered only if it commits); every instance,
// the sender included, then drops those keys, URLs or tags:
//
//	bus, err := coherent.New(coherent.Options{
//		Dial:     dial,                      // a Listener on its own connection; see below
//		DB:       primary,                   // *sql.DB of the primary
//		Replicas: coherent.Replicapin(pins), // *replicapin.DB: position-aware refill
//	})
//	users, err := coherent.NewCache(bus, "users", userCache) // *localcache.Cache[string, User]
//	pages, err := coherent.NewPages(bus, "pages", responseCache)
//	r.Use(pins.Handler, pages.Handler, responseCache.Handler)
//
//	// in a handler, after the write committed:
//	err = bus.Send(ctx, users.Key(id), pages.Tag("photos"))
//	// reads:
//	u, err := users.GetOrLoad(ctx, id, loadUser)
//
// # What is guaranteed
//
// Position-aware refill: each notification carries the primary's WAL
// position P of the write. An instance that hears "K changed at P" marks K
// before dropping it, and until every replica has replayed P, loads of K
// (through [Cache.GetOrLoad], or requests for a purged URL or after a
// purged tag through [Pages.Handler]) read through [Replicas] at P or
// later. A load already running when the key is dropped is not stored
// (localcache guarantees that for Delete and Purge). So a lagging replica
// never puts an old value back into any cache, and after replay resumes
// every cache agrees with the database.
//
// Read-your-writes: a request that sent an invalidation, and a client
// that replicapin pins after its write, read through the caches (the
// typed cache through GetOrLoad; the response cache through
// internal/reqstate), so the writer sees the write on every instance at
// once, not only after the notification arrived.
//
// Everyone else sees a write once their instance has heard the
// notification: milliseconds on one network (see the README for measured
// figures), or, when the bus is not working, as described next.
//
// # What is not guaranteed, and the bound
//
// NOTIFY is at most once: a notification sent while an instance's
// listener is disconnected is lost to it. The Bus therefore flushes (empties)
// every cache it governs whenever its listener starts listening, after a
// reconnect and at start, and marks every key at the primary's position
// read then, so nothing loaded before the gap survives it. It also sends
// itself a heartbeat every Options.Heartbeat: if one does not come back
// within Options.MaxSilence (a connection dead without an error, or a
// listener too far behind), it reconnects and flushes. A notification it
// cannot decode also flushes. An entry can thus be stale on an instance:
//
//   - while connected: until the notification arrives (delivery latency);
//   - after a silent failure: at most MaxSilence plus Heartbeat plus the
//     reconnection, then flushed;
//   - while PostgreSQL or the listener is down and cannot reconnect: up to
//     the cache's own TTL, which is the bound to choose TTLs by. Reads keep
//     working: hits, and misses from replicas (marks are not applied while
//     disconnected, since the primary they would send reads to is then
//     usually down; what is refilled meanwhile is flushed on reconnect).
//     [Bus.Stats] shows Connected false and DownSince, and
//     Options.ErrorHandler hears [ErrDisconnected] and [ErrFlushed].
//
// Send itself can fail (the primary is unreachable after the commit): the
// write stands, the sending instance's caches are invalidated anyway, the
// others keep their entries until TTL. SendTx fails with the transaction.
//
// # Positions of notifications sent inside a transaction
//
// Inside a transaction, pg_current_wal_insert_lsn() is short of the
// commit record, so a replica that replayed it may not show the
// transaction. A SendTx notification therefore carries no position; each
// receiving instance reads the primary's position when it arrives, which
// is after the commit (NOTIFY delivers only committed notifications), at a
// cost of one query per instance. Send, called after the commit, reads the
// position in the same statement as the NOTIFY.
//
// # The listener
//
// The library imports no database driver. The application provides
// Options.Dial returning a [Listener] on a connection of its own, not one
// from a pool, and not through a transaction-pooling proxy. With pgx
// (github.com/jackc/pgx/v5), the adapter is:
//
//	type pgxListener struct{ conn *pgx.Conn }
//
//	func (l pgxListener) Listen(ctx context.Context, channel string) error {
//		_, err := l.conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
//		return err
//	}
//
//	func (l pgxListener) WaitForNotification(ctx context.Context) (string, error) {
//		n, err := l.conn.WaitForNotification(ctx)
//		if err != nil {
//			return "", err
//		}
//		return n.Payload, nil
//	}
//
//	func (l pgxListener) Close() error { return l.conn.Close(context.Background()) }
//
//	dial := func(ctx context.Context) (coherent.Listener, error) {
//		conn, err := pgx.Connect(ctx, primaryDSN)
//		if err != nil {
//			return nil, err
//		}
//		return pgxListener{conn}, nil
//	}
//
// Payloads are text under NOTIFY's 8000-byte limit; a Send with more items
// goes out as several notifications in one statement, and concurrent Sends
// share statements. A key too long for a notification of its own
// invalidates its whole cache instead.
package coherent
