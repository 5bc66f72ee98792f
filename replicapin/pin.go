package replicapin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// pin is what a client carries after a write: the primary's position when
// the write's response started, and when the pin lapses.
type pin struct {
	pos Position
	// unknown means the primary's position could not be read after the
	// write (the primary was down or slow): no replica covers the pin, so
	// the client reads from the primary until it expires.
	unknown bool
	expires int64 // Unix milliseconds
}

// merge combines the pin a client came with and the one its new write
// produced. The position never goes backwards: a position read after a
// write also covers every earlier write, so the newer pin wins unless the
// older one is further along (a later timeline, or a larger offset on the
// same one). An unknown new position wins over everything. The expiry is
// the new pin's.
func merge(old, cur pin) pin {
	if cur.unknown || old.unknown {
		return cur
	}
	if old.pos.Timeline > cur.pos.Timeline ||
		old.pos.Timeline == cur.pos.Timeline && old.pos.Offset > cur.pos.Offset {
		cur.pos = old.pos
	}
	return cur
}

// The sealed cookie value is base64url (no padding) of
//
//	version(1) flags(1) timeline(4) offset(8) expires(8) mac(16)
//
// where mac is HMAC-SHA256 over the cookie name, a zero byte and the first
// 22 bytes, truncated to 128 bits. It is signed, not encrypted: a position
// is no secret, but it must not be forgeable, or a client could pin itself
// to the primary forever or unpin itself early.
const (
	pinVersion  = 1
	flagUnknown = 1
	payloadLen  = 1 + 1 + 4 + 8 + 8
	macLen      = 16
)

// sealedLen is the length of every valid cookie value (51 characters).
var sealedLen = base64.RawURLEncoding.EncodedLen(payloadLen + macLen)

var errBadPin = errors.New("replicapin: invalid pin cookie")

// sealer signs pin cookies with its first key and accepts those signed
// with any of its keys, for one cookie name.
type sealer struct {
	prefix []byte       // the cookie name and a zero byte, MACed first
	macs   []*sync.Pool // of *macState, one per key, newest first
}

// macState is a keyed HMAC and buffers it can write from and to without
// making its callers' arrays escape to the heap.
type macState struct {
	h   hash.Hash
	in  [payloadLen]byte
	out [sha256.Size]byte
}

func newSealer(name string, keys ...[]byte) *sealer {
	s := &sealer{prefix: append([]byte(name), 0)}
	for _, key := range keys {
		key = append([]byte(nil), key...)
		s.macs = append(s.macs, &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, key)} }})
	}
	return s
}

// mac writes the MAC of payload under key k to dst.
func (s *sealer) mac(k int, dst, payload []byte) {
	m := s.macs[k].Get().(*macState)
	copy(m.in[:], payload)
	m.h.Reset()
	m.h.Write(s.prefix)
	m.h.Write(m.in[:])
	copy(dst, m.h.Sum(m.out[:0]))
	s.macs[k].Put(m)
}

// seal returns p as a cookie value.
func (s *sealer) seal(p pin) string {
	var b [payloadLen + macLen]byte
	b[0] = pinVersion
	if p.unknown {
		b[1] = flagUnknown
	}
	binary.BigEndian.PutUint32(b[2:], p.pos.Timeline)
	binary.BigEndian.PutUint64(b[6:], p.pos.Offset)
	binary.BigEndian.PutUint64(b[14:], uint64(p.expires))
	s.mac(0, b[payloadLen:], b[:payloadLen])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// open checks a cookie value and returns its pin. A pin that has expired at
// now (Unix milliseconds) is an error; one expiring after maxExpires (a pin
// sealed under a longer MaxPin) is cut back to maxExpires.
func (s *sealer) open(v string, now, maxExpires int64) (pin, error) {
	var b [payloadLen + macLen]byte
	if len(v) != sealedLen {
		return pin{}, errBadPin
	}
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(v)); err != nil || n != len(b) {
		return pin{}, errBadPin
	}
	if !s.verify(b[:payloadLen], b[payloadLen:]) {
		return pin{}, errBadPin
	}
	if b[0] != pinVersion || b[1]&^flagUnknown != 0 {
		return pin{}, errBadPin
	}
	p := pin{
		pos: Position{
			Timeline: binary.BigEndian.Uint32(b[2:]),
			Offset:   binary.BigEndian.Uint64(b[6:]),
		},
		unknown: b[1]&flagUnknown != 0,
		expires: int64(binary.BigEndian.Uint64(b[14:])),
	}
	if p.expires <= now {
		return pin{}, errBadPin
	}
	p.expires = min(p.expires, maxExpires)
	return p, nil
}

// verify reports whether mac is payload's MAC under one of the keys.
func (s *sealer) verify(payload, mac []byte) bool {
	var want [macLen]byte
	for k := range s.macs {
		s.mac(k, want[:], payload)
		if hmac.Equal(mac, want[:]) {
			return true
		}
	}
	return false
}
