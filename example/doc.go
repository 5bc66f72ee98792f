// Command example is a small photo notebook built on all four sharednothing
// middlewares and a chi router: cookie sessions (package session), a
// per-instance response cache for the public home page (localcache),
// on-demand thumbnails from signed URLs (thumbnail), and reads from a lagging
// replica with read-your-writes (replicapin). Any number of identical
// instances can run behind a load balancer; they share the database, the
// upload directory and the secret, and nothing else.
//
// Run it with no configuration (make demo): it starts a throwaway PostgreSQL
// primary and a streaming replica that lags by -replica-delay, from the
// server binaries in -pg-bin (default: the newest /usr/lib/postgresql/*/bin,
// else initdb on PATH), or, without PostgreSQL, uses an embedded SQLite
// database; and it makes up a random secret. -h lists the flags; each takes
// its default from an environment variable:
//
//	-addr             listen address (ADDR; default 127.0.0.1:8080)
//	-database-url     PostgreSQL primary, or sqlite:PATH (DATABASE_URL); list every
//	                  node with target_session_attrs=read-write to follow a failover
//	-replica-url      PostgreSQL replica, repeatable (REPLICA_URLS, comma-separated)
//	-secret           the secret every key is derived from (SECRET; default random)
//	-accept-secret    another secret still accepted, repeatable (ACCEPT_SECRETS)
//	-data-dir         where uploads are kept, shared by all instances (DATA_DIR)
//	-thumb-queue      renders that may wait before 503s (THUMB_QUEUE; default 64)
//	-upload-quota-mib photo storage per user (UPLOAD_QUOTA_MIB; default 100)
//	-drain            after SIGTERM, serve while failing /healthz (DRAIN; default 5s)
//	-secure-cookies   HTTPS: Secure __Host- cookies and HSTS (SECURE_COOKIES=true)
//	-instance         name in X-Instance and application_name (INSTANCE)
//	-pg-bin           PostgreSQL server binaries for the demo database (PG_BIN)
//	-replica-delay    lag of the throwaway replica (REPLICA_DELAY; default 1s)
//
// On SIGTERM an instance drains: for -drain it answers /healthz with 503,
// closes each connection after its response and drops page reads
// unanswered (a balancer retries them elsewhere and counts the failure),
// while still saving forms, so a load balancer stops sending it work and
// holds no idle connection to it; then it refuses new connections and
// finishes the requests in flight.
//
// The home page (the latest photos) is cached by each instance for five
// minutes, and each user's photo and note counts for ten; the instances
// keep these caches coherent over PostgreSQL LISTEN/NOTIFY (package
// coherent): every upload, photo delete and note drops them on every
// instance within milliseconds, and the next reader refills them from a
// replica that has replayed the write, or from the primary, never from a
// replica still behind it. Pages say where their data came from: the
// counts' "cache", "primary" or "replica-N", the footer's read-from, and
// X-Cache on the home page. On SQLite (one instance) the caches are
// invalidated in-process. UNSAFE_NO_POSITION_AWARE_REFILL=1 turns the
// position-aware refill off; it exists only for the end-to-end test that
// shows stale pages without it.
//
// Every form carries an idempotency key, so a form sent twice is saved once.
// Logging out revokes every session of the user issued before (the
// session Validate hook against a logouts table). Every page is sent with
// a Content-Security-Policy that allows no scripts and no framing.
//
// Rotating the secret without logging anyone out takes three rolls across
// the instances: first add the new secret with -accept-secret everywhere,
// then make it -secret with the old one as -accept-secret; once every
// instance seals with the new secret, drop the old one.
package main
