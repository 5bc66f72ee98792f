package main

import "database/sql"

// newSessions returns the session manager: one hash and block key pair per
// secret, newest first, so cookies sealed under an accepted secret are read
// and re-sealed under the current one.
func newSessions(secrets [][]byte) *sessionManager {
	hash, block := derive(secrets, "session hash"), derive(secrets, "session block")
	var pairs [][]byte
	for i := range secrets {
		pairs = append(pairs, hash[i], block[i])
	}
	m := newSessionManager(pairs...)
	m.Secure = false // the demo serves plain HTTP on loopback
	return m
}

func newCache() *responseCache { return &responseCache{} }

func newThumbs(uploads string, secrets [][]byte) (*thumbnailHandler, error) {
	return &thumbnailHandler{dir: uploads, keys: derive(secrets, "thumbnail"), prefix: "/thumbs"}, nil
}

func newPins(primary *sql.DB, replicas []*sql.DB, secrets [][]byte, dialect string) (*pinnedDB, error) {
	return &pinnedDB{primary: primary, replicas: replicas}, nil
}
