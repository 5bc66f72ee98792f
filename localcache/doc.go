// Package localcache provides per-machine, in-process caches: a sharded,
// byte-bounded typed cache with load-through and stampede protection, and an
// HTTP response cache middleware built on it.
package localcache
