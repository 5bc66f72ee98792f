// Package replicapin sends reads to database replicas while giving each client
// read-your-writes consistency: a client that just wrote carries the primary's
// position in a signed cookie and reads from the primary until a replica has
// replayed past it, whichever instance serves the next request.
//
// A [DB] wraps one primary and any number of replicas, all plain *sql.DB
// values, so it works with database/sql and anything built on it (sqlc,
// sqlx). Mount [DB.Handler] as middleware; in handlers, read through
// [DB.Reader] (or [DB.Read], which retries on the primary when a replica
// fails) and write through [DB.Writer]:
//
//	db, err := replicapin.New(primary, []*sql.DB{replica}, replicapin.Options{
//		Key: sharednothing.DeriveKey(secret, "replicapin"),
//	})
//	...
//	mux.Handle("/", db.Handler(app))
//
//	// in a handler:
//	db.Writer(r.Context()).ExecContext(r.Context(), "UPDATE ...")
//	db.Reader(r.Context()).QueryRowContext(r.Context(), "SELECT ...")
//
// When a request writes (calls Writer, or uses a method such as POST), the
// middleware reads the primary's position once, as the response starts, and
// sets the pin cookie. The cookie value is small (51 bytes), signed with
// HMAC-SHA256, and carries the position, its timeline and an expiry at most
// MaxPin ahead; there is no shared store, so every app instance with the same
// key honours it. Reads make no extra round trips: a monitor goroutine per
// server polls positions every PollInterval, and Reader compares the
// client's pin with the last polled values in memory. Once every replica has
// passed a pin, the next response clears the cookie.
//
// [PostgresLSN] pins by WAL position; [TimeWindow] pins for a fixed time,
// for databases without positions. Replicas that fail a poll, stop
// replaying as replicas (promoted) or are on another timeline than the
// primary are not read from until they recover; with none usable, reads go
// to the primary. [DB.Stats] reports the routing counts and each server's
// state for health checks.
//
// The pin covers writes made before the response headers go out. A handler
// that writes after starting its response (say, while streaming) is not
// pinned to those writes; [Options.ErrorHandler] hears of it.
package replicapin
