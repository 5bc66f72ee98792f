package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The sealed payload is a compact binary record, never gob:
//
//	version byte (payloadVersion)
//	id      [16]byte   random session ID; all zero until first saved
//	flags   byte       flagRememberMe
//	issued  varint     unix nanoseconds: creation or last RenewToken
//	expires varint     unix nanoseconds: absolute deadline
//	active  varint     unix nanoseconds: last recorded activity (idle timeout)
//	count   uvarint
//	count × (uvarint key length, key, tag byte, value)
//
// Entries are sorted by key and unique. Each value carries a type tag so an
// int comes back as an int, []byte as []byte and time.Time with its instant.
// Any other type is stored as JSON and comes back as json.RawMessage.
//
// Times are kept to the nanosecond so that a session renewed right after a
// revocation time compares as issued after it (version 1 kept seconds).
const payloadVersion = 2

// flagRememberMe marks a session whose cookie persists even when
// Cookie.Persist is false ([Manager.RememberMe]).
const flagRememberMe byte = 1

const (
	tagNil byte = iota + 1
	tagString
	tagBytes
	tagFalse
	tagTrue
	tagInt
	tagInt8
	tagInt16
	tagInt32
	tagInt64
	tagUint
	tagUint8
	tagUint16
	tagUint32
	tagUint64
	tagFloat32
	tagFloat64
	tagTime
	tagJSON
)

// idLen is the length of a session ID in bytes (128 random bits).
const idLen = 16

type entry struct {
	key string
	val any
}

// payload is the content of one session cookie.
type payload struct {
	id      [idLen]byte // all zero until the session is first saved
	flags   byte
	issued  int64   // unix nanoseconds
	expires int64   // unix nanoseconds
	active  int64   // unix nanoseconds
	entries []entry // sorted by key, keys unique
}

// find returns the index of key in p.entries, or the insertion point and false.
func (p *payload) find(key string) (int, bool) {
	return slices.BinarySearchFunc(p.entries, key, func(e entry, k string) int {
		return strings.Compare(e.key, k)
	})
}

var errPayload = errors.New("session: malformed payload")

// appendPayload appends the encoding of p to b.
func appendPayload(b []byte, p *payload) ([]byte, error) {
	b = append(b, payloadVersion)
	b = append(b, p.id[:]...)
	b = append(b, p.flags)
	b = binary.AppendVarint(b, p.issued)
	b = binary.AppendVarint(b, p.expires)
	b = binary.AppendVarint(b, p.active)
	b = binary.AppendUvarint(b, uint64(len(p.entries)))
	for _, e := range p.entries {
		b = binary.AppendUvarint(b, uint64(len(e.key)))
		b = append(b, e.key...)
		var err error
		if b, err = appendValue(b, e.val); err != nil {
			return nil, fmt.Errorf("session: value for key %q: %w", e.key, err)
		}
	}
	return b, nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, tagNil), nil
	case string:
		b = append(b, tagString)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...), nil
	case []byte:
		b = append(b, tagBytes)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...), nil
	case bool:
		if v {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case int:
		return binary.AppendVarint(append(b, tagInt), int64(v)), nil
	case int8:
		return binary.AppendVarint(append(b, tagInt8), int64(v)), nil
	case int16:
		return binary.AppendVarint(append(b, tagInt16), int64(v)), nil
	case int32:
		return binary.AppendVarint(append(b, tagInt32), int64(v)), nil
	case int64:
		return binary.AppendVarint(append(b, tagInt64), v), nil
	case uint:
		return binary.AppendUvarint(append(b, tagUint), uint64(v)), nil
	case uint8:
		return binary.AppendUvarint(append(b, tagUint8), uint64(v)), nil
	case uint16:
		return binary.AppendUvarint(append(b, tagUint16), uint64(v)), nil
	case uint32:
		return binary.AppendUvarint(append(b, tagUint32), uint64(v)), nil
	case uint64:
		return binary.AppendUvarint(append(b, tagUint64), v), nil
	case float32:
		return binary.LittleEndian.AppendUint32(append(b, tagFloat32), math.Float32bits(v)), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, tagFloat64), math.Float64bits(v)), nil
	case time.Time:
		_, offset := v.Zone()
		b = append(b, tagTime)
		b = binary.AppendVarint(b, v.Unix())
		b = binary.AppendUvarint(b, uint64(v.Nanosecond()))
		return binary.AppendVarint(b, int64(offset)), nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, errors.New("invalid json.RawMessage")
		}
		return appendJSON(b, v), nil
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return appendJSON(b, j), nil
	}
}

func appendJSON(b, j []byte) []byte {
	b = append(b, tagJSON)
	b = binary.AppendUvarint(b, uint64(len(j)))
	return append(b, j...)
}

// decoder reads a payload; the first failure sticks in bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// decodePayload parses b into p. It never panics; any malformed or trailing
// input is errPayload and leaves p unspecified.
func decodePayload(b []byte, p *payload) error {
	d := decoder{b: b}
	if d.byte() != payloadVersion {
		return errPayload
	}
	copy(p.id[:], d.bytes(idLen))
	p.flags = d.byte()
	if p.flags&^flagRememberMe != 0 {
		return errPayload
	}
	p.issued = d.varint()
	p.expires = d.varint()
	p.active = d.varint()
	n := d.uvarint()
	// Every entry takes at least three bytes: a bound before allocating.
	if d.bad || n > uint64(len(d.b))/3 {
		return errPayload
	}
	p.entries = make([]entry, 0, n)
	for range n {
		key := string(d.bytes(d.uvarint()))
		val := d.value()
		if d.bad {
			return errPayload
		}
		if k := len(p.entries); k > 0 && p.entries[k-1].key >= key {
			return errPayload // unsorted or duplicate
		}
		p.entries = append(p.entries, entry{key, val})
	}
	if d.bad || len(d.b) != 0 {
		return errPayload
	}
	return nil
}

func (d *decoder) value() any {
	switch d.byte() {
	case tagNil:
		return nil
	case tagString:
		return string(d.bytes(d.uvarint()))
	case tagBytes:
		return append([]byte{}, d.bytes(d.uvarint())...)
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		v := d.varint()
		if int64(int(v)) != v {
			d.bad = true
		}
		return int(v)
	case tagInt8:
		v := d.varint()
		if v < math.MinInt8 || v > math.MaxInt8 {
			d.bad = true
		}
		return int8(v)
	case tagInt16:
		v := d.varint()
		if v < math.MinInt16 || v > math.MaxInt16 {
			d.bad = true
		}
		return int16(v)
	case tagInt32:
		v := d.varint()
		if v < math.MinInt32 || v > math.MaxInt32 {
			d.bad = true
		}
		return int32(v)
	case tagInt64:
		return d.varint()
	case tagUint:
		v := d.uvarint()
		if uint64(uint(v)) != v {
			d.bad = true
		}
		return uint(v)
	case tagUint8:
		v := d.uvarint()
		if v > math.MaxUint8 {
			d.bad = true
		}
		return uint8(v)
	case tagUint16:
		v := d.uvarint()
		if v > math.MaxUint16 {
			d.bad = true
		}
		return uint16(v)
	case tagUint32:
		v := d.uvarint()
		if v > math.MaxUint32 {
			d.bad = true
		}
		return uint32(v)
	case tagUint64:
		return d.uvarint()
	case tagFloat32:
		b := d.bytes(4)
		if d.bad {
			return nil
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case tagFloat64:
		b := d.bytes(8)
		if d.bad {
			return nil
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case tagTime:
		sec := d.varint()
		nsec := d.uvarint()
		offset := d.varint()
		// Zone offsets stay within ±26 hours; nanoseconds below one second.
		if d.bad || nsec >= 1e9 || offset < -26*3600 || offset > 26*3600 {
			d.bad = true
			return nil
		}
		t := time.Unix(sec, int64(nsec))
		if offset == 0 {
			return t.UTC()
		}
		return t.In(time.FixedZone("", int(offset)))
	case tagJSON:
		j := d.bytes(d.uvarint())
		if d.bad || !json.Valid(j) {
			d.bad = true
			return nil
		}
		return json.RawMessage(append([]byte{}, j...))
	default:
		d.bad = true
		return nil
	}
}

// normalize returns val as the session keeps it: values of the types the
// payload encodes natively as they are, anything else as its JSON encoding,
// so that Get returns the same type before and after the session is saved.
func normalize(val any) (any, error) {
	switch v := val.(type) {
	case nil, string, []byte, bool, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, float32, float64, time.Time:
		return val, nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, errors.New("invalid json.RawMessage")
		}
		return v, nil
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(j), nil
	}
}
