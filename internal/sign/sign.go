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
	pools []*sync.Pool // of *state, one pool per key, newest first
}

// state is one key's HMAC with scratch space, pooled so that signing
// allocates nothing and the caller's buffers never escape: parts are copied
// into buf before they reach the hash.Hash interface.
type state struct {
	h   hash.Hash
	buf []byte
	out [Size]byte
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
		s.pools = append(s.pools, &sync.Pool{New: func() any { return &state{h: hmac.New(sha256.New, k)} }})
	}
	return s, nil
}

// mac computes the MAC of parts under key i into a pooled state, which the
// caller must put back.
func (s *Signer) mac(i int, parts [][]byte) *state {
	st := s.pools[i].Get().(*state)
	st.buf = binary.BigEndian.AppendUint32(st.buf[:0], uint32(len(s.label)))
	st.buf = append(st.buf, s.label...)
	for _, p := range parts {
		st.buf = binary.BigEndian.AppendUint32(st.buf, uint32(len(p)))
		st.buf = append(st.buf, p...)
	}
	st.h.Reset()
	st.h.Write(st.buf)
	st.h.Sum(st.out[:0])
	if cap(st.buf) > 64<<10 {
		st.buf = nil // don't pool huge buffers
	}
	return st
}

// Sum appends the MAC of parts under the newest key to dst.
func (s *Signer) Sum(dst []byte, parts ...[]byte) []byte {
	st := s.mac(0, parts)
	dst = append(dst, st.out[:]...)
	s.pools[0].Put(st)
	return dst
}

// Verify reports whether mac is the MAC of parts under any key, in constant
// time per key, and whether it was made with an older key (so the caller can
// re-sign).
func (s *Signer) Verify(mac []byte, parts ...[]byte) (ok, old bool) {
	if len(mac) != Size {
		return false, false
	}
	for i := range s.pools {
		st := s.mac(i, parts)
		ok := hmac.Equal(mac, st.out[:])
		s.pools[i].Put(st)
		if ok {
			return true, i > 0
		}
	}
	return false, false
}
