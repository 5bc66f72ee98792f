// Package replicapin sends reads to database replicas while giving each client
// read-your-writes consistency: a client that has just written successfully
// carries the primary's position in a signed cookie and reads from the primary
// until a replica has replayed past it, whichever instance serves the next
// request.
//
// A [DB] wraps one primary and any number of named replicas, all plain *sql.DB
// values (open them with your driver, e.g. pgx: import _
// "github.com/jackc/pgx/v5/stdlib"), so it works with database/sql and
// anything built on it. Mount [DB.Handler] as middleware; in handlers, write
// through [DB.Writer] and read through [DB.Read], which says where it read:
//
//	db, err := replicapin.New(primary, []replicapin.Replica{{Name: "replica-1", DB: replica}}, replicapin.Options{
//		Key: sharednothing.DeriveKey(secret, "replicapin"),
//	})
//	...
//	mux.Handle("/", db.Handler(app))
//
//	// in a handler:
//	if _, err := db.Writer(ctx).ExecContext(ctx, "UPDATE ..."); err != nil {
//		http.Error(w, "not saved", http.StatusServiceUnavailable) // pins nothing
//		return
//	}
//	from, err := db.Read(ctx, func(q *sql.DB) error { return q.QueryRowContext(ctx, "SELECT ...").Scan(&v) })
//
// # Pinning only what succeeded
//
// A request pins its client when it called Writer and its response status is
// a success (below 400; see [Options.Succeeded]), or when it called
// [DB.Wrote], the explicit mark for writes made some other way. Only then
// does the middleware read the primary's position, once, as the response
// starts. Every other request, a POST that only logs in or a 404 included,
// costs no round trip, and a write that failed because the primary is down
// never pins the client's reads to that primary.
//
// The cookie value is small (72 bytes), signed with the toolkit's HMAC-SHA256
// scheme (Key and PreviousKeys rotate as in every package of the toolkit), and
// carries the position, its timeline and an expiry at most MaxPin ahead;
// there is no shared store, so every app instance with the same key honours
// it. Reads make no extra round trips: a monitor goroutine per server polls
// positions every PollInterval, and reads compare the client's pin with the
// last polled values in memory. Once every replica has passed a pin, the next
// response clears the cookie.
//
// # Failover
//
// Open the primary with a connection string that follows the writable
// server (for PostgreSQL: every host, and target_session_attrs=read-write).
// When a replica is promoted, the DB follows it without a restart: pins taken
// on the old timeline that not every replica had replayed read from the new
// primary until they expire (no replica on the new timeline can be shown to
// hold them); the promoted node, no longer in recovery, is not
// read from as a replica ([ErrNotReplica] in [NodeStats.Err]); a replica still
// on the old timeline is not read from ([ErrTimeline]) until it is re-pointed
// at the new primary and follows its timeline, and then it serves reads again.
// Writes acknowledged by the old primary but not replicated before it died
// are lost with asynchronous replication; pinning cannot bring them back.
//
// # Positions for other packages
//
// [DB.PrimaryPosition] reads the primary's position after a write, to send
// with a message to other instances; a read in a context from [AtLeast]
// sees everything up to such a position (for a cache refill); [DB.Replayed] says when
// every replica has replayed it; [Position] has a text form
// ([ParsePosition]). [PostgresLSN] pins by WAL position; [TimeWindow] pins
// for a fixed time, for databases without positions.
//
// # Composition
//
// The middleware registers the pin cookie with the toolkit's per-request
// state and marks a request with a valid pin as one the response cache must
// read through, so the toolkit's response cache never serves a pinned client
// a page cached before its write.
//
// The pin covers writes made before the response headers go out. A handler
// that writes after starting its response (say, while streaming) is not
// pinned to those writes; [Options.ErrorHandler] hears of it
// ([ErrLateWrite]). [DB.Stats] reports the routing counts and each server's
// state for health checks and metrics; it encodes to JSON as it is.
package replicapin
