// Command example is a small photo notebook built on all four sharednothing
// middlewares and a chi router: cookie sessions (package session), a
// per-instance response cache for the public home page (localcache),
// on-demand thumbnails from signed URLs (thumbnail), and reads from a lagging
// replica with read-your-writes (replicapin). Any number of identical
// instances can run behind a round-robin load balancer; they share the
// database, the upload directory and the secret, and nothing else.
//
// Run it with no configuration (make demo): it starts a throwaway PostgreSQL
// primary and a streaming replica that lags by -replica-delay, or, without
// PostgreSQL installed, uses an embedded SQLite database.
//
// Flags (each with an environment variable as its default):
//
//	-addr           listen address (ADDR; default 127.0.0.1:8080)
//	-database-url   PostgreSQL primary (DATABASE_URL)
//	-replica-url    PostgreSQL replica, repeatable (REPLICA_URLS, comma-separated)
//	-secret         the secret every key is derived from (SECRET)
//	-accept-secret  another secret still accepted, repeatable (ACCEPT_SECRETS)
//	-data-dir       upload directory shared by all instances (DATA_DIR)
//	-instance       name sent in X-Instance (INSTANCE)
//	-replica-delay  lag of the throwaway replica (REPLICA_DELAY; default 1s)
//	-secure-cookies mark cookies Secure, for HTTPS (SECURE_COOKIES=true)
//
// Rotating the secret without logging anyone out takes two rolls across
// the instances: first add the new secret with -accept-secret everywhere,
// then make it -secret with the old one as -accept-secret; once every
// instance seals with the new secret, drop the old one.
package main
