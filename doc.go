// Package sharednothing ties together a toolkit of HTTP middlewares for web
// tiers that scale out by running many identical, stateless instances behind a
// load balancer.
//
// Shared-nothing means no instance holds state another one needs: the client
// carries its session in a sealed cookie ([github.com/sharednothing/sharednothing/session]),
// each machine keeps its own caches ([github.com/sharednothing/sharednothing/localcache])
// and renders thumbnails on demand ([github.com/sharednothing/sharednothing/thumbnail]),
// a client that just wrote carries a signed replication position that keeps
// its reads on the primary until a replica has caught up
// ([github.com/sharednothing/sharednothing/replicapin]), and the per-machine
// caches hear about writes on other machines through the database they
// already share ([github.com/sharednothing/sharednothing/coherent]).
// Instances share only the database and one secret; [DeriveKey] turns that
// secret into an independent key per purpose, and [Chain] composes the
// middlewares.
//
// Every middleware has the type func(http.Handler) http.Handler, so it mounts
// on a chi router:
//
//	secret := []byte(os.Getenv("SECRET")) // at least 32 bytes, same on every instance
//	sessions := session.New(sharednothing.DeriveKey(secret, "session"))
//	db, err := replicapin.New(primary, []replicapin.Replica{{Name: "replica-1", DB: replica}}, replicapin.Options{
//		Key: sharednothing.DeriveKey(secret, "replicapin"),
//	})
//	pages, err := localcache.NewResponseCache(localcache.ResponseOptions{})
//	thumbs, err := thumbnail.New(thumbnail.Options{Source: thumbnail.Dir("uploads"), Key: sharednothing.DeriveKey(secret, "thumbnail"), Prefix: "/thumbs"})
//
//	r := chi.NewRouter()
//	r.Use(sessions.LoadAndSave, db.Handler)
//	r.With(pages.Handler).Get("/", home)
//	r.Mount("/thumbs", thumbs)
//
// and on a plain [http.ServeMux]:
//
//	mux := http.NewServeMux()
//	mux.Handle("GET /{$}", pages.Handler(http.HandlerFunc(home)))
//	mux.Handle("/thumbs/", http.StripPrefix("/thumbs", thumbs))
//	http.ListenAndServe(addr, sharednothing.Chain(sessions.LoadAndSave, db.Handler)(mux))
//
// # Mounting order
//
// The middlewares may be mounted in any order. The session and replicapin
// middlewares tell a response cache, through the request's context, which
// cookies carry per-client state and whether the handler used them: a
// response that depended on a non-empty session is never stored, one made
// for a visitor without a session is served only to visitors without one,
// and a client pinned after its own write always reads through the cache.
//
// # One vocabulary
//
// The same idea has the same name and shape in every package:
//
//   - Keys: one Key of at least 32 bytes, from [DeriveKey] with the
//     package's name as purpose ("session", "thumbnail", "replicapin"), plus PreviousKeys that are still accepted, so a key
//     rotates without logging anyone out or breaking a URL. session.New
//     takes them as arguments (key, previousKeys...), the others in their
//     Options.
//   - Cookies: [Cookie], whose zero value is safe (Secure and HttpOnly on,
//     SameSite=Lax, host-only); Insecure is the one switch for plain-HTTP
//     development, and every constructor checks the browsers' rules with
//     [Cookie.Check].
//   - Errors at request time go to a field ErrorHandler
//     func(w http.ResponseWriter, r *http.Request, err error). When it is
//     nil the error is logged through log/slog and the client gets the
//     status text, never internal details. Bad configuration is an error
//     from the constructor ("pkg: New: Options.X must not be negative"),
//     except session.New, which panics at start-up like [DeriveKey].
//   - Options are structs whose zero value means the default, stated in
//     each field's comment.
//   - Stats() returns a plain struct of counters with snake_case JSON tags,
//     ready for expvar.Func or a Prometheus collector.
//   - Time comes from the time package: tests use testing/synctest, so no
//     package exports a clock.
package sharednothing
