package jpg

// decode replays the recorded segments: tables in order, and each scan
// either decoded or, when it carries only coefficients the scale does not
// need, skipped.
func (d *decoder) decode() error {
	d.hset, d.qset, d.restart = [2][4]bool{}, [4]bool{}, 0
	for _, sg := range d.segs {
		if sg.marker != 0xDA {
			if err := d.applyTables(sg.marker, sg.body); err != nil {
				return err
			}
			continue
		}
		s := &d.scans[sg.scan]
		if d.progressive && s.ss > 0 && s.ss >= d.comp[s.comp[0]].track {
			continue // only coefficients above what this scale keeps
		}
		if err := d.decodeScan(s); err != nil {
			return err
		}
		if d.truncated {
			break
		}
	}
	if d.progressive {
		return d.reconstruct()
	}
	// Block rows no scan reached (a truncated or incomplete file) are
	// mid-gray.
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		rest := c.plane[min(c.rows*c.ny*c.bw*c.nx, len(c.plane)):]
		for j := range rest {
			rest[j] = 128
		}
	}
	return nil
}

// decodeScan decodes one scan's entropy-coded data.
func (d *decoder) decodeScan(s *scan) error {
	// Work check before any decoding: blocks this scan visits.
	var blocks int64
	for i := 0; i < s.ns; i++ {
		c := &d.comp[s.comp[i]]
		if s.ns == 1 {
			blocks += int64(ceilDiv(c.cw, 8)) * int64(ceilDiv(c.ch, 8))
		} else {
			blocks += int64(c.bw) * int64(c.bh)
		}
	}
	if d.work += blocks; d.work > d.workLimit {
		return fmtTooComplex("scans visit more than %d blocks for %d in the frame", d.workLimit, d.workLimit/workPerBlock)
	}
	d.decoded++
	for i := 0; i < s.ns; i++ {
		c := &d.comp[s.comp[i]]
		c.pred = 0
		needDC := !d.progressive || s.ss == 0 && s.ah == 0
		needAC := !d.progressive || s.ss > 0
		if needDC {
			if !d.hset[0][s.td[i]] {
				return formatErr("scan uses undefined DC table %d", s.td[i])
			}
			c.dc = &d.huff[0][s.td[i]]
		}
		if needAC {
			if !d.hset[1][s.ta[i]] {
				return formatErr("scan uses undefined AC table %d", s.ta[i])
			}
			c.ac = &d.huff[1][s.ta[i]]
		}
		if !d.progressive && !d.qset[c.tq] {
			return formatErr("component %d uses undefined quantisation table %d", c.id, c.tq)
		}
	}
	d.eobrun = 0
	r := bitReader{data: d.data[:scanEnd(d.data, s.start)], pos: s.start}

	var block func(c *component, bx, by int) error
	switch {
	case !d.progressive:
		block = d.sequentialBlock
	case s.ss == 0 && s.ah == 0:
		block = func(c *component, bx, by int) error { return d.dcFirst(&r, c, bx, by, s.al) }
	case s.ss == 0:
		block = func(c *component, bx, by int) error { return d.dcRefine(&r, c, bx, by, s.al) }
	case s.ah == 0:
		block = func(c *component, bx, by int) error { return d.acFirst(&r, c, bx, by, s) }
	default:
		block = func(c *component, bx, by int) error { return d.acRefine(&r, c, bx, by, s) }
	}
	if !d.progressive {
		d.seqReader = &r
	}

	// MCU geometry: an interleaved scan walks the MCU grid; a scan of one
	// component walks that component's blocks in raster order.
	mw, mh := d.mcux, d.mcuy
	if s.ns == 1 {
		c := &d.comp[s.comp[0]]
		mw, mh = ceilDiv(c.cw, 8), ceilDiv(c.ch, 8)
	}
	mcu, next := 0, 0
	for my := 0; my < mh; my++ {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		for mx := 0; mx < mw; mx++ {
			if d.restart > 0 && mcu == next {
				if mcu > 0 && !d.restartAt(&r) {
					d.truncated = true
					return nil
				}
				next += d.restart
			}
			mcu++
			if s.ns == 1 {
				if err := block(&d.comp[s.comp[0]], mx, my); err != nil {
					return err
				}
				continue
			}
			for i := 0; i < s.ns; i++ {
				c := &d.comp[s.comp[i]]
				for v := 0; v < c.v; v++ {
					for h := 0; h < c.h; h++ {
						if err := block(c, mx*c.h+h, my*c.v+v); err != nil {
							return err
						}
					}
				}
			}
		}
		if r.overrun() {
			d.truncated = true
			return nil
		}
		if !d.progressive {
			for i := 0; i < s.ns; i++ {
				c := &d.comp[s.comp[i]]
				if s.ns == 1 {
					c.rows = my + 1
				} else {
					c.rows = (my + 1) * c.v
				}
			}
		}
	}
	return nil
}

// restartAt handles the end of a restart interval: it drops the buffered
// bits, finds the next RSTn marker, and resets the predictors. It reports
// false when the data ends instead.
func (d *decoder) restartAt(r *bitReader) bool {
	r.reset()
	p := scanEndOrRST(r.data, r.pos)
	q := p + 1
	for q < len(r.data) && r.data[q] == 0xFF {
		q++
	}
	if q >= len(r.data) || r.data[q] < 0xD0 || r.data[q] > 0xD7 {
		return false // the data ends, or another marker comes first
	}
	r.pos = q + 1
	for i := 0; i < d.ncomp; i++ {
		d.comp[i].pred = 0
	}
	d.eobrun = 0
	return true
}

// scanEndOrRST is scanEnd that also stops at restart markers.
func scanEndOrRST(data []byte, p int) int {
	for p < len(data) {
		if data[p] != 0xFF {
			p++
			continue
		}
		q := p + 1
		for q < len(data) && data[q] == 0xFF {
			q++
		}
		if q >= len(data) || data[q] != 0 {
			return p
		}
		p = q + 1
	}
	return len(data)
}

// sequentialBlock decodes one block of a sequential scan and writes its
// scaled inverse DCT to the component's plane.
func (d *decoder) sequentialBlock(c *component, bx, by int) error {
	r := d.seqReader
	q := &d.quant[c.tq]
	blk := &d.blk
	keep := c.keep

	if r.n < 32 {
		r.fill()
	}
	var diff int32
	if e := c.dc.fast[r.acc>>(64-lookBits)]; e != 0 {
		l := uint(e & 31)
		r.acc <<= l
		r.n -= l
		diff = e >> 16
	} else {
		s, ok := r.symbol(c.dc)
		if !ok || s > 11 {
			return formatErr("bad DC code")
		}
		diff = extend(r.bits(uint(s)), uint(s))
	}
	c.pred += diff
	blk[0] = c.pred * q[0]
	last := 0
	ac := c.ac
	// The bit buffer lives in locals through the AC loop, so that it stays
	// in registers; it is written back around the slow paths.
	acc, n := r.acc, r.n
	for k := 1; k < 64; {
		if n < 32 {
			r.acc, r.n = acc, n
			r.fill()
			acc, n = r.acc, r.n
		}
		if e := ac.fast[acc>>(64-lookBits)]; e != 0 {
			l := uint(e & 31)
			acc <<= l
			n -= l
			if e&fastEOB != 0 {
				break
			}
			k += int(e>>fastRunShift) & 15
			if k < keep {
				blk[unzig[k]] = (e >> 16) * q[k]
				last = k
			}
			k++
			continue
		}
		r.acc, r.n = acc, n
		rs, ok := r.symbol(ac)
		if !ok {
			return formatErr("bad AC code")
		}
		run, size := int(rs>>4), uint(rs&15)
		var v int32
		if size != 0 {
			v = extend(r.bits(size), size)
		}
		acc, n = r.acc, r.n
		if size == 0 {
			if run != 15 {
				break // end of block
			}
			k += 16
			continue
		}
		k += run
		if k < keep {
			blk[unzig[k]] = v * q[k]
			last = k
		}
		k++
	}
	r.acc, r.n = acc, n
	stride := c.bw * c.nx
	idct(blk, c.nx, c.ny, last, c.plane[by*c.ny*stride+bx*c.nx:], stride)
	if last == 0 {
		blk[0] = 0
	} else {
		for _, z := range unzig[:keep] {
			blk[z] = 0
		}
	}
	return nil
}

func (d *decoder) coefs(c *component, bx, by int) []int16 {
	i := (by*c.bw + bx) * c.keep
	return c.coef[i : i+c.keep]
}

func (d *decoder) dcFirst(r *bitReader, c *component, bx, by, al int) error {
	s, ok := r.symbol(c.dc)
	if !ok || s > 11 {
		return formatErr("bad DC code")
	}
	c.pred += extend(r.bits(uint(s)), uint(s))
	d.coefs(c, bx, by)[0] = int16(c.pred << al)
	return nil
}

func (d *decoder) dcRefine(r *bitReader, c *component, bx, by, al int) error {
	if r.bits(1) != 0 {
		d.coefs(c, bx, by)[0] |= 1 << al
	}
	return nil
}

// acFirst decodes the first pass of a spectral band (T.81 G.1.2.2).
func (d *decoder) acFirst(r *bitReader, c *component, bx, by int, s *scan) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	co := d.coefs(c, bx, by)
	var nz *uint64
	if c.nz != nil {
		nz = &c.nz[by*c.bw+bx]
	}
	for k := s.ss; k <= s.se; {
		rs, ok := r.symbol(c.ac)
		if !ok {
			return formatErr("bad AC code")
		}
		run, size := int(rs>>4), uint(rs&15)
		if size == 0 {
			if run < 15 {
				d.eobrun = 1<<run - 1 + int(r.bits(uint(run)))
				break
			}
			k += 16
			continue
		}
		k += run
		if k > 63 {
			break
		}
		v := extend(r.bits(size), size) << s.al
		if k < len(co) {
			co[k] = int16(v)
		}
		if nz != nil {
			*nz |= 1 << k
		}
		k++
	}
	return nil
}

// acRefine decodes a successive-approximation refinement of a band
// (T.81 G.1.2.3): correction bits for coefficients already non-zero, and
// new coefficients of magnitude 1<<Al placed among the zero ones.
func (d *decoder) acRefine(r *bitReader, c *component, bx, by int, s *scan) error {
	co := d.coefs(c, bx, by)
	var nzp *uint64
	if c.nz != nil {
		nzp = &c.nz[by*c.bw+bx]
	}
	nonzero := func(k int) bool {
		if nzp != nil {
			return *nzp&(1<<k) != 0
		}
		return co[k] != 0
	}
	p1 := int16(1) << s.al
	refine := func(k int) {
		if r.bits(1) != 0 && k < len(co) && co[k]&p1 == 0 {
			if co[k] >= 0 {
				co[k] += p1
			} else {
				co[k] -= p1
			}
		}
	}
	k := s.ss
	if d.eobrun == 0 {
	band:
		for k <= s.se {
			rs, ok := r.symbol(c.ac)
			if !ok {
				return formatErr("bad AC code")
			}
			run, size := int(rs>>4), rs&15
			var v int16
			switch {
			case size != 0:
				v = p1
				if r.bits(1) == 0 {
					v = -p1
				}
			case run != 15:
				d.eobrun = 1 << run
				if run > 0 {
					d.eobrun += int(r.bits(uint(run)))
				}
				break band
			}
			// Skip run zero-history coefficients, refining the non-zero ones
			// on the way; place v on the next zero one.
			for ; k <= s.se; k++ {
				if nonzero(k) {
					refine(k)
					continue
				}
				if run > 0 {
					run--
					continue
				}
				if v != 0 {
					if k < len(co) {
						co[k] = v
					}
					if nzp != nil {
						*nzp |= 1 << k
					}
				}
				k++
				break
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= s.se; k++ {
			if nonzero(k) {
				refine(k)
			}
		}
		d.eobrun--
	}
	return nil
}

// reconstruct turns the kept coefficients of a progressive file into
// planes.
func (d *decoder) reconstruct() error {
	for i := 0; i < d.ncomp; i++ {
		c := &d.comp[i]
		if !d.qset[c.tq] {
			return formatErr("component %d uses undefined quantisation table %d", c.id, c.tq)
		}
		q := &d.quant[c.tq]
		stride := c.bw * c.nx
		c.plane = make([]uint8, stride*c.bh*c.ny)
		c.nz = nil
		for by := 0; by < c.bh; by++ {
			if err := d.ctx.Err(); err != nil {
				return err
			}
			for bx := 0; bx < c.bw; bx++ {
				co := d.coefs(c, bx, by)
				last := 0
				for k, v := range co {
					if v != 0 {
						d.blk[unzig[k]] = int32(v) * q[k]
						last = k
					}
				}
				d.blk[0] = int32(co[0]) * q[0]
				idct(&d.blk, c.nx, c.ny, last, c.plane[by*c.ny*stride+bx*c.nx:], stride)
				for _, z := range unzig[:c.keep] {
					d.blk[z] = 0
				}
			}
		}
		c.coef = nil
	}
	return nil
}
