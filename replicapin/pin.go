package replicapin

import (
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/sharednothing/sharednothing/internal/sign"
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
	cur.pos = furthest(old.pos, cur.pos)
	return cur
}

// furthest returns the later of two positions: the one on the later
// timeline, or with the larger offset on the same one.
func furthest(p, q Position) Position {
	if p.Timeline > q.Timeline || p.Timeline == q.Timeline && p.Offset > q.Offset {
		return p
	}
	return q
}

// The sealed cookie value is base64url (no padding) of
//
//	version(1) flags(1) timeline(4) offset(8) expires(8) mac(32)
//
// where mac is the [sign.Signer] MAC over the cookie name and the first 22
// bytes. It is signed, not encrypted: a position is no secret, but it must
// not be forgeable, or a client could pin itself to the primary forever or
// unpin itself early.
const (
	pinVersion  = 1
	flagUnknown = 1
	payloadLen  = 1 + 1 + 4 + 8 + 8
	macLen      = sign.Size
)

// sealedLen is the length of every valid cookie value (72 characters).
var sealedLen = base64.RawURLEncoding.EncodedLen(payloadLen + macLen)

var errBadPin = errors.New("replicapin: invalid pin cookie")

// sealer signs and checks the pin cookies of one cookie name.
type sealer struct {
	name   []byte
	signer *sign.Signer
}

// newSealer returns the sealer for the cookie called name; its errors
// name [New], which reports them.
func newSealer(name string, key []byte, previous ...[]byte) (sealer, error) {
	signer, err := sign.New("replicapin: New", "replicapin pin", key, previous...)
	return sealer{name: []byte(name), signer: signer}, err
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
	s.signer.Sum(b[:payloadLen], s.name, b[:payloadLen]) // appends the MAC in place

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
	if ok, _ := s.signer.Verify(b[payloadLen:], s.name, b[:payloadLen]); !ok {
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
