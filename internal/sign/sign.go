// Package sign is the toolkit's one implementation of "sign with the newest
// key, accept any current or previous key": HMAC-SHA256 over a
// domain-separating label and the message parts, each length-prefixed so
// that ("ab","c") and ("a","bc") never sign alike.
//
// thumbnail signs URLs with it and replicapin signs pin cookies; session
// uses gorilla/securecookie, which does its own MAC, keyed from the same
// [sharednothing.DeriveKey] scheme.
package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// Size is the length of a MAC in bytes.
const Size = sha256.Size

// MinKeyLen is the shortest key a Signer accepts.
const MinKeyLen = 32

// Signer signs with its first key and verifies with any of them. It is safe
// for concurrent use.
type Signer struct {
	label []byte
	pools []*sync.Pool // one per key, newest first
}

// New returns a Signer for label (which separates uses of the same key:
// "thumbnail url", "replicapin pin") with key, accepting also previous. It
// returns an error naming pkg when a key is shorter than [MinKeyLen].
func New(pkg, label string, key []byte, previous ...[]byte) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%s: Key must be at least %d bytes (use sharednothing.DeriveKey)", pkg, MinKeyLen)
	}
	for _, k := range previous {
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("%s: every PreviousKeys key must be at least %d bytes", pkg, MinKeyLen)
		}
	}
	s := &Signer{label: []byte(label)}
	for _, k := range append([][]byte{key}, previous...) {
		k := append([]byte(nil), k...)
		s.pools = append(s.pools, &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }})
	}
	return s, nil
}

func (s *Signer) sum(i int, dst []byte, parts ...[]byte) []byte {
	h := s.pools[i].Get().(hash.Hash)
	h.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s.label)))
	h.Write(n[:])
	h.Write(s.label)
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	dst = h.Sum(dst)
	s.pools[i].Put(h)
	return dst
}

// Sum appends the MAC of parts under the newest key to dst.
func (s *Signer) Sum(dst []byte, parts ...[]byte) []byte { return s.sum(0, dst, parts...) }

// Verify reports whether mac is the MAC of parts under any key, in constant
// time per key, and whether it was made with an older key (so the caller can
// re-sign).
func (s *Signer) Verify(mac []byte, parts ...[]byte) (ok, old bool) {
	if len(mac) != Size {
		return false, false
	}
	var buf [Size]byte
	for i := range s.pools {
		if hmac.Equal(mac, s.sum(i, buf[:0], parts...)) {
			return true, i > 0
		}
	}
	return false, false
}
