// Package sharednothing ties together a toolkit of HTTP middlewares for web
// tiers that scale out by running many identical, stateless instances behind a
// load balancer.
//
// Shared-nothing means no instance holds state another one needs: the client
// carries its session in a sealed cookie ([github.com/sharednothing/sharednothing/session]),
// each machine keeps its own cache ([github.com/sharednothing/sharednothing/localcache])
// and renders thumbnails on demand ([github.com/sharednothing/sharednothing/thumbnail]),
// and a client that just wrote carries a signed replication position that
// keeps its reads on the primary until a replica has caught up
// ([github.com/sharednothing/sharednothing/replicapin]). Instances share only
// the database and one secret; [DeriveKey] turns that secret into an
// independent key per purpose, and [Chain] composes the middlewares.
//
// Every middleware has the type func(http.Handler) http.Handler, so it mounts
// on a chi router:
//
//	secret := []byte(os.Getenv("SECRET")) // at least 32 bytes, same on every instance
//	sessions := session.New(sharednothing.DeriveKey(secret, "session-hash"), sharednothing.DeriveKey(secret, "session-block"))
//	db, _ := replicapin.New(primary, replicas, replicapin.Options{Key: sharednothing.DeriveKey(secret, "replicapin")})
//	pages, _ := localcache.NewResponseCache(localcache.ResponseOptions{})
//	thumbs, _ := thumbnail.New(thumbnail.Options{Source: thumbnail.Dir("uploads"), Key: sharednothing.DeriveKey(secret, "thumbnail"), Prefix: "/thumbs"})
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
package sharednothing
