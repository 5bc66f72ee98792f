package jpg

import (
	"bytes"
	"context"
	"encoding/binary"
)

// component is one colour component of the frame, with its decoded plane
// (sequential) or its kept coefficients (progressive), both at the decode
// scale.
type component struct {
	id     uint8
	h, v   int   // sampling factors
	tq     uint8 // quantisation table
	bw     int   // blocks per row in the MCU grid (mcux*h)
	bh     int   // block rows in the MCU grid (mcuy*v)
	cw     int   // samples per row at full scale, ceil(width*h/hmax)
	ch     int   // rows at full scale
	nx, ny int   // samples per block side at the decode scale (scaled IDCT size)
	ux, uy int   // upsampling factors from the plane to the output
	keep   int   // zigzag coefficients the nx×ny transform reads
	plane  []uint8
	pred   int32 // DC predictor
	dc     *huffTable
	ac     *huffTable
	// Progressive decoding.
	coef  []int16  // keep coefficients per block, zigzag order
	nz    []uint64 // per block, which coefficients are non-zero (when track > keep)
	track int      // coefficients whose history is followed; scans starting at or above it are skipped
	al    [64]int8 // progression: the last Al sent for each coefficient, -1 for none
	done  bool     // sequential: the component's scan has been seen
	rows  int      // sequential: block rows decoded
}

// scan is a parsed SOS header and the extent of its entropy-coded data.
type scan struct {
	ns             int
	comp           [4]int // component indices
	td, ta         [4]uint8
	ss, se, ah, al int
	start          int // first byte of entropy-coded data
}

// segment is a marker segment after the frame header, replayed in order
// while decoding: tables, restart intervals and scans.
type segment struct {
	marker byte
	body   []byte
	scan   int // index into decoder.scans for SOS
}

type decoder struct {
	ctx       context.Context
	scale     int   // 1, 2, 4 or 8
	n         int   // output samples per block side: 8/scale
	maxPixels int64 // 0: none

	data          []byte
	width, height int
	ncomp         int
	comp          [4]component
	hmax, vmax    int
	mcux, mcuy    int
	progressive   bool
	frame         bool // SOF seen

	quant   [4][64]int32 // zigzag order
	qset    [4]bool
	huff    [2][4]huffTable // [0] DC, [1] AC
	hset    [2][4]bool
	restart int

	jfif      bool
	adobe     bool
	transform uint8
	icc       [][]byte // ICC_PROFILE chunks by sequence number

	segs  []segment
	scans []scan

	eobrun    int
	work      int64 // blocks visited by decoded scans
	workLimit int64
	decoded   int // scans decoded (not skipped), for tests
	truncated bool
	blk       [64]int32
	seqReader *bitReader // the sequential scan's reader, for sequentialBlock
}

// parse walks the marker segments. With configOnly it stops at the first
// scan; otherwise it records every segment up to EOI, validates the scan
// headers and the progression, and allocates the planes or coefficients.
func (d *decoder) parse(data []byte, configOnly bool) error {
	d.data = data
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return formatErr("missing SOI marker")
	}
	p := 2
	for {
		// Find the marker: 0xFF, optional fill bytes, the code.
		if p >= len(data) {
			break // no EOI: decode what is there
		}
		if data[p] != 0xFF {
			if !d.frame || len(d.scans) == 0 {
				return formatErr("expected a marker at byte %d", p)
			}
			// Junk after a scan: find the next marker.
			p = scanEnd(data, p)
			continue
		}
		for p < len(data) && data[p] == 0xFF {
			p++
		}
		if p >= len(data) {
			break
		}
		m := data[p]
		p++
		switch {
		case m == 0xD9: // EOI
			return d.finishParse(configOnly)
		case m == 0xD8:
			return formatErr("second SOI marker")
		case m >= 0xD0 && m <= 0xD7 || m == 0x01 || m == 0x00:
			continue // stray RST, TEM, or a stuffed zero: no length
		}
		if p+2 > len(data) {
			if len(d.scans) > 0 {
				break
			}
			return formatErr("truncated marker segment")
		}
		l := int(binary.BigEndian.Uint16(data[p:]))
		if l < 2 || p+l > len(data) {
			if len(d.scans) > 0 {
				d.truncated = true
				break
			}
			return formatErr("marker 0x%02X segment runs past the end", m)
		}
		body := data[p+2 : p+l]
		p += l
		switch {
		case m == 0xC0 || m == 0xC1 || m == 0xC2:
			if d.frame {
				return formatErr("second frame header")
			}
			if err := d.parseSOF(body, m == 0xC2); err != nil {
				return err
			}
		case m == 0xC3 || m >= 0xC5 && m <= 0xC7 || m >= 0xC9 && m <= 0xCB || m >= 0xCD && m <= 0xCF:
			return unsupported("frame type SOF%d (lossless, hierarchical or arithmetic coding)", m-0xC0)
		case m == 0xCC:
			return unsupported("arithmetic coding (DAC marker)")
		case m == 0xDC:
			return unsupported("DNL marker")
		case m == 0xDE || m == 0xDF:
			return unsupported("hierarchical coding")
		case m == 0xE0:
			if len(body) >= 5 && string(body[:5]) == "JFIF\x00" {
				d.jfif = true
			}
		case m == 0xE2:
			d.parseICC(body)
		case m == 0xEE:
			if len(body) >= 12 && string(body[:5]) == "Adobe" {
				d.adobe = true
				d.transform = body[11]
			}
		case m == 0xC4 || m == 0xDB || m == 0xDD:
			// Tables and restart intervals are checked now and applied in
			// order while decoding: progressive files change them between
			// scans.
			if err := d.applyTables(m, body); err != nil {
				return err
			}
			if !configOnly {
				d.segs = append(d.segs, segment{marker: m, body: body})
			}
		case m == 0xDA:
			if !d.frame {
				return formatErr("scan before frame header")
			}
			if configOnly {
				return nil
			}
			if len(d.scans) >= maxScans {
				return fmtTooComplex("more than %d scans", maxScans)
			}
			sc, err := d.parseSOS(body)
			if err != nil {
				return err
			}
			sc.start = p
			d.segs = append(d.segs, segment{marker: m, scan: len(d.scans)})
			d.scans = append(d.scans, sc)
			p = scanEnd(data, p)
		}
	}
	if configOnly {
		if !d.frame {
			return formatErr("no frame header")
		}
		return nil
	}
	return d.finishParse(false)
}

// scanEnd returns the position of the first marker at or after p that is
// not a restart marker (the 0xFF starting it), or len(data).
func scanEnd(data []byte, p int) int {
	for p < len(data) {
		i := bytes.IndexByte(data[p:], 0xFF)
		if i < 0 {
			return len(data)
		}
		p += i
		q := p + 1
		for q < len(data) && data[q] == 0xFF {
			q++
		}
		if q >= len(data) {
			return len(data)
		}
		if m := data[q]; m == 0 || m >= 0xD0 && m <= 0xD7 {
			p = q + 1
			continue
		}
		return q - 1
	}
	return len(data)
}

func (d *decoder) parseSOF(b []byte, progressive bool) error {
	if len(b) < 6 {
		return formatErr("short frame header")
	}
	if b[0] != 8 {
		return unsupported("%d-bit samples", b[0])
	}
	d.height = int(binary.BigEndian.Uint16(b[1:]))
	d.width = int(binary.BigEndian.Uint16(b[3:]))
	d.ncomp = int(b[5])
	d.progressive = progressive
	if d.height == 0 {
		return unsupported("height defined by a DNL marker")
	}
	if d.width == 0 {
		return formatErr("zero width")
	}
	switch d.ncomp {
	case 1, 3, 4:
	default:
		return unsupported("%d components", d.ncomp)
	}
	if len(b) != 6+3*d.ncomp {
		return formatErr("frame header length")
	}
	d.hmax, d.vmax = 1, 1
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		c.id = b[6+3*i]
		c.h, c.v = int(b[7+3*i]>>4), int(b[7+3*i]&15)
		c.tq = b[8+3*i]
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return formatErr("component %d: sampling %dx%d, table %d", i, c.h, c.v, c.tq)
		}
		for j := 0; j < i; j++ {
			if d.comp[j].id == c.id {
				return formatErr("duplicate component id %d", c.id)
			}
		}
		if d.ncomp == 1 {
			c.h, c.v = 1, 1 // one component: an MCU is one block, whatever the factors
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	for i := 0; i < d.ncomp; i++ {
		if c := &d.comp[i]; d.hmax%c.h != 0 || d.vmax%c.v != 0 {
			return unsupported("sampling factors %dx%d in a frame of %dx%d", c.h, c.v, d.hmax, d.vmax)
		}
	}
	if d.maxPixels > 0 && int64(d.width)*int64(d.height) > d.maxPixels {
		return fmtTooLarge(d.width, d.height, d.maxPixels)
	}
	d.mcux = ceilDiv(d.width, 8*d.hmax)
	d.mcuy = ceilDiv(d.height, 8*d.vmax)
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		c.bw, c.bh = d.mcux*c.h, d.mcuy*c.v
		c.cw, c.ch = ceilDiv(d.width*c.h, d.hmax), ceilDiv(d.height*c.v, d.vmax)
		for k := range c.al {
			c.al[k] = -1
		}
	}
	d.frame = true
	return nil
}

func (d *decoder) parseICC(b []byte) {
	const sig = "ICC_PROFILE\x00"
	if len(b) < len(sig)+2 || string(b[:len(sig)]) != sig {
		return
	}
	seq, total := int(b[len(sig)]), int(b[len(sig)+1])
	if seq < 1 || seq > total {
		return
	}
	if len(d.icc) != total {
		if len(d.icc) != 0 {
			return
		}
		d.icc = make([][]byte, total)
	}
	d.icc[seq-1] = b[len(sig)+2:]
}

// applyTables parses DHT, DQT and DRI segments into the decoder.
func (d *decoder) applyTables(m byte, b []byte) error {
	switch m {
	case 0xDD:
		if len(b) != 2 {
			return formatErr("DRI length")
		}
		d.restart = int(binary.BigEndian.Uint16(b))
	case 0xDB:
		for len(b) > 0 {
			pq, tq := b[0]>>4, b[0]&15
			if tq > 3 || pq > 1 {
				return formatErr("DQT table %d precision %d", tq, pq)
			}
			n := 1 + 64*(1+int(pq))
			if len(b) < n {
				return formatErr("short DQT")
			}
			for k := 0; k < 64; k++ {
				if pq == 0 {
					d.quant[tq][k] = int32(b[1+k])
				} else {
					d.quant[tq][k] = int32(binary.BigEndian.Uint16(b[1+2*k:]))
				}
			}
			d.qset[tq] = true
			b = b[n:]
		}
	case 0xC4:
		for len(b) > 0 {
			if len(b) < 17 {
				return formatErr("short DHT")
			}
			tc, th := b[0]>>4, b[0]&15
			if tc > 1 || th > 3 {
				return formatErr("DHT class %d table %d", tc, th)
			}
			var counts [17]int
			total := 0
			for l := 1; l <= 16; l++ {
				counts[l] = int(b[l])
				total += counts[l]
			}
			if total == 0 || total > 256 || len(b) < 17+total {
				return formatErr("DHT with %d codes", total)
			}
			if err := d.huff[tc][th].build(&counts, b[17:17+total], tc == 1); err != nil {
				return err
			}
			d.hset[tc][th] = true
			b = b[17+total:]
		}
	}
	return nil
}

func (d *decoder) parseSOS(b []byte) (scan, error) {
	var s scan
	if len(b) < 1 {
		return s, formatErr("short scan header")
	}
	s.ns = int(b[0])
	if s.ns < 1 || s.ns > d.ncomp || len(b) != 4+2*s.ns {
		return s, formatErr("scan header with %d components", s.ns)
	}
	blocks := 0
	for i := 0; i < s.ns; i++ {
		id := b[1+2*i]
		ci := -1
		for j := 0; j < d.ncomp; j++ {
			if d.comp[j].id == id {
				ci = j
			}
		}
		if ci < 0 {
			return s, formatErr("scan names unknown component %d", id)
		}
		for j := 0; j < i; j++ {
			if s.comp[j] == ci {
				return s, formatErr("scan names component %d twice", id)
			}
		}
		s.comp[i] = ci
		s.td[i], s.ta[i] = b[2+2*i]>>4, b[2+2*i]&15
		if s.td[i] > 3 || s.ta[i] > 3 {
			return s, formatErr("scan table selector")
		}
		c := &d.comp[ci]
		blocks += c.h * c.v
	}
	if s.ns > 1 && blocks > 10 {
		return s, formatErr("%d blocks per MCU", blocks)
	}
	q := b[1+2*s.ns:]
	s.ss, s.se, s.ah, s.al = int(q[0]), int(q[1]), int(q[2]>>4), int(q[2]&15)
	if !d.progressive {
		for i := 0; i < s.ns; i++ {
			c := &d.comp[s.comp[i]]
			if c.done {
				return s, formatErr("component %d in two sequential scans", c.id)
			}
			c.done = true
		}
		s.ss, s.se, s.ah, s.al = 0, 63, 0, 0
		return s, nil
	}
	// Progressive: T.81 G.1.1.1 and the successive approximation rules.
	// A coefficient's first scan has Ah = 0; each later one refines it by
	// one bit, Ah = the previous Al and Al = Ah - 1. Anything else is
	// refused, which also bounds the scans that can touch a block.
	switch {
	case s.ss > s.se || s.se > 63,
		s.ss == 0 && s.se != 0,
		s.ss > 0 && s.ns != 1,
		s.al > 13,
		s.ah != 0 && s.al != s.ah-1:
		return s, formatErr("bad progression parameters Ss=%d Se=%d Ah=%d Al=%d", s.ss, s.se, s.ah, s.al)
	}
	for i := 0; i < s.ns; i++ {
		c := &d.comp[s.comp[i]]
		for k := s.ss; k <= s.se; k++ {
			want := int8(-1)
			if s.ah != 0 {
				want = int8(s.ah)
			}
			if c.al[k] != want {
				return s, formatErr("component %d coefficient %d sent again (Ah=%d, Al=%d)", c.id, k, s.ah, s.al)
			}
			c.al[k] = int8(s.al)
		}
	}
	return s, nil
}

// finishParse checks that the file has scans and allocates what the
// chosen scale needs.
func (d *decoder) finishParse(configOnly bool) error {
	if !d.frame {
		return formatErr("no frame header")
	}
	if configOnly {
		return nil
	}
	if len(d.scans) == 0 {
		return formatErr("no scans")
	}
	d.n = 8 / d.scale
	var blocks int64
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		// A subsampled component is decoded with a larger inverse DCT where
		// the scale leaves room (4:2:0 chroma at 1/8 scale: 2×2 per block),
		// so it comes out at the output resolution; what remains is
		// upsampled.
		c.nx, c.ux = scaledSize(d.n, d.hmax/c.h)
		c.ny, c.uy = scaledSize(d.n, d.vmax/c.v)
		c.keep = keepFor(c.nx, c.ny)
		blocks += int64(c.bw) * int64(c.bh)
		if !d.progressive {
			c.plane = make([]uint8, c.bw*c.nx*c.bh*c.ny)
			continue
		}
		// Follow the history of every coefficient a decoded refinement scan
		// touches: a refinement scan that starts below the tracked limit
		// needs the non-zero history of its whole band.
		c.track = c.keep
		for changed := true; changed; {
			changed = false
			for _, s := range d.scans {
				if s.ns == 1 && s.comp[0] == i && s.ss > 0 && s.ah > 0 && s.ss < c.track && s.se+1 > c.track {
					c.track, changed = s.se+1, true
				}
			}
		}
		c.coef = make([]int16, c.bw*c.bh*c.keep)
		if c.track > c.keep {
			c.nz = make([]uint64, c.bw*c.bh)
		}
	}
	d.workLimit = workPerBlock*blocks + 4096
	return nil
}

func (d *decoder) config() Config {
	c := Config{Width: d.width, Height: d.height, ColorSpace: d.colorSpace(), Progressive: d.progressive}
	for i := 0; i < d.ncomp; i++ {
		c.Sampling = append(c.Sampling, [2]int{d.comp[i].h, d.comp[i].v})
	}
	for _, chunk := range d.icc {
		if chunk == nil {
			return c // incomplete profile: ignore
		}
	}
	for _, chunk := range d.icc {
		c.ICC = append(c.ICC, chunk...)
	}
	return c
}

func (d *decoder) colorSpace() ColorSpace {
	switch d.ncomp {
	case 1:
		return Gray
	case 3:
		if d.adobe {
			if d.transform == 0 {
				return RGB
			}
			return YCbCr
		}
		if !d.jfif && d.comp[0].id == 'R' && d.comp[1].id == 'G' && d.comp[2].id == 'B' {
			return RGB
		}
		return YCbCr
	}
	if d.adobe && d.transform == 2 {
		return YCCK
	}
	return CMYK
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// scaledSize returns the inverse DCT size for a component upsampled by f
// at n output samples per luma block, and the upsampling left over.
func scaledSize(n, f int) (size, up int) {
	if n*f <= 8 {
		return n * f, 1
	}
	return n, f
}
