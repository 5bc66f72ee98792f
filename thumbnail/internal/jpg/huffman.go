package jpg

// lookBits is the width of the first-level Huffman lookup. 10 bits
// resolve almost every code of a photo's tables, and most AC codes
// together with their extra bits.
const lookBits = 10

// Packed fast entries: bits 0–4 the bits consumed (code and extra bits),
// 5–8 the zero run, bit 9 end of block, bits 16–31 the signed value.
// Zero means "not resolved here": take the slow path.
const (
	fastRunShift = 5
	fastEOB      = 1 << 9
)

// huffTable is one Huffman table (T.81 Annex C) with its lookups.
type huffTable struct {
	fast    [1 << lookBits]int32
	look    [1 << lookBits]uint16 // len<<8 | symbol for codes of up to lookBits bits
	maxcode [17]int32             // largest code of each length, -1 if none
	valptr  [17]int32             // index in vals of code 0 of each length
	vals    [256]uint8
}

// build makes the canonical codes from the count of codes of each length
// and the symbols in code order.
func (t *huffTable) build(counts *[17]int, vals []uint8, ac bool) error {
	*t = huffTable{}
	copy(t.vals[:], vals)
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		t.maxcode[l] = -1
		if counts[l] > 0 {
			t.valptr[l] = int32(k - code)
			for i := 0; i < counts[l]; i++ {
				if code >= 1<<l {
					return formatErr("Huffman table with too many codes of %d bits", l)
				}
				if l <= lookBits {
					t.addShort(code, l, vals[k], ac)
				}
				code++
				k++
			}
			t.maxcode[l] = int32(code - 1)
		}
		code <<= 1
	}
	return nil
}

// addShort fills the lookup entries of one code of l <= lookBits bits.
func (t *huffTable) addShort(code, l int, sym uint8, ac bool) {
	shift := lookBits - l
	base := code << shift
	for i := 0; i < 1<<shift; i++ {
		t.look[base+i] = uint16(l)<<8 | uint16(sym)
	}
	run, size := int(sym>>4), int(sym&15)
	if !ac {
		run, size = 0, int(sym)
		if size > 11 {
			return
		}
	}
	switch {
	case ac && sym == 0x00: // end of block
		for i := 0; i < 1<<shift; i++ {
			t.fast[base+i] = int32(l) | fastEOB
		}
	case ac && size == 0 && run != 15: // end-of-band runs: progressive only, slow path
	case l+size <= lookBits:
		rest := shift - size
		for e := 0; e < 1<<size; e++ {
			v := extend(int32(e), uint(size))
			entry := int32(l+size) | int32(run)<<fastRunShift | v<<16
			b := base | e<<rest
			for i := 0; i < 1<<rest; i++ {
				t.fast[b+i] = entry
			}
		}
	}
}

// extend turns s received bits into a signed value (T.81 F.2.2.1).
func extend(v int32, s uint) int32 {
	if s == 0 {
		return 0
	}
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// bitReader reads entropy-coded data MSB first from a 64-bit buffer. It
// removes stuffed zero bytes and stops at a marker, feeding zero bits
// from there on and counting them so that a decoder can tell a truncated
// stream.
type bitReader struct {
	data []byte
	pos  int
	acc  uint64 // unread bits at the top
	n    uint   // number of unread bits in acc
	pad  int    // zero bytes fed past the data
}

// fill tops the buffer up to at least 57 bits.
func (r *bitReader) fill() {
	if r.pos+8 <= len(r.data) {
		x := uint64(r.data[r.pos])<<56 | uint64(r.data[r.pos+1])<<48 | uint64(r.data[r.pos+2])<<40 | uint64(r.data[r.pos+3])<<32 |
			uint64(r.data[r.pos+4])<<24 | uint64(r.data[r.pos+5])<<16 | uint64(r.data[r.pos+6])<<8 | uint64(r.data[r.pos+7])
		// No 0xFF byte among the eight: no stuffing and no marker.
		if y := ^x; (y-0x0101010101010101)&^y&0x8080808080808080 == 0 {
			k := (64 - r.n) >> 3
			r.acc |= x >> r.n
			r.pos += int(k)
			r.n += k << 3
			return
		}
	}
	r.fillSlow()
}

func (r *bitReader) fillSlow() {
	for r.n <= 56 {
		var b byte
		switch {
		case r.pos >= len(r.data):
			r.pad++
		case r.data[r.pos] != 0xFF:
			b = r.data[r.pos]
			r.pos++
		case r.pos+1 < len(r.data) && r.data[r.pos+1] == 0:
			b = 0xFF
			r.pos += 2
		default: // a marker: stay in front of it
			r.pad++
		}
		r.acc |= uint64(b) << (56 - r.n)
		r.n += 8
	}
	// Bits below n may hold part of the next byte from the fast path, or
	// zeros; clear them so padding is zero.
	r.acc &^= ^uint64(0) >> r.n
}

// overrun reports whether padding bits have been consumed.
func (r *bitReader) overrun() bool { return r.pad*8 > int(r.n) }

// reset drops the buffered bits, for a restart marker.
func (r *bitReader) reset() { r.acc, r.n, r.pad = 0, 0, 0 }

// bits reads s <= 16 bits.
func (r *bitReader) bits(s uint) int32 {
	if s == 0 {
		return 0
	}
	if r.n < s {
		r.fill()
	}
	v := int32(r.acc >> (64 - s))
	r.acc <<= s
	r.n -= s
	return v
}

// symbol decodes one Huffman code; ok is false for a code not in the
// table.
func (r *bitReader) symbol(t *huffTable) (sym uint8, ok bool) {
	if r.n < 16 {
		r.fill()
	}
	if e := t.look[r.acc>>(64-lookBits)]; e != 0 {
		l := uint(e >> 8)
		r.acc <<= l
		r.n -= l
		return uint8(e), true
	}
	for l := uint(lookBits + 1); l <= 16; l++ {
		code := int32(r.acc >> (64 - l))
		if code <= t.maxcode[l] {
			r.acc <<= l
			r.n -= l
			return t.vals[(t.valptr[l]+code)&255], true
		}
	}
	return 0, false
}
