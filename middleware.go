package sharednothing

import (
	"crypto/hkdf"
	"crypto/sha256"
	"net/http"
)

// MinSecretLen is the shortest application secret [DeriveKey] accepts.
const MinSecretLen = 32

// keySalt domain-separates this toolkit's keys from any other use of the
// same secret. Changing it would change every derived key.
const keySalt = "github.com/sharednothing/sharednothing v1"

// Chain composes middlewares into one. The first argument is the outermost:
// Chain(a, b, c)(h) serves a request through a, then b, then c, then h.
// Chain with no arguments returns a middleware that returns its handler
// unchanged.
func Chain(mws ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		return h
	}
}

// DeriveKey returns a 32-byte key for purpose derived from secret with
// HKDF-SHA256. The same secret and purpose always give the same key, and
// different purposes give unrelated keys, so one application secret can key
// sessions ("session"), thumbnail URLs ("thumbnail") and pin cookies
// ("replicapin") without one key ever being usable for another job.
//
// DeriveKey panics if secret is shorter than [MinSecretLen] bytes: a short
// secret is a configuration error that must stop the program at start-up.
func DeriveKey(secret []byte, purpose string) []byte {
	if len(secret) < MinSecretLen {
		panic("sharednothing: DeriveKey: secret must be at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, []byte(keySalt), purpose, 32)
	if err != nil {
		// Only possible for lengths HKDF-SHA256 cannot produce; 32 is fine.
		panic("sharednothing: DeriveKey: " + err.Error())
	}
	return key
}
