package jpg

import "image"

// upsampler produces one component's samples at output resolution, one
// row at a time, with a triangle filter centred on the samples (JFIF
// siting): each output sample is the bilinear blend of its two nearest
// component samples in each direction.
type upsampler struct {
	plane  []uint8
	stride int
	fx, fy int // upsampling factors
	vw, vh int // valid samples at this scale
	x0, x1 []int32
	wx     []int32 // weight of x1, of 256
	tmp    []int32
	out    []uint8
}

func (d *decoder) newUpsampler(c *component, w int) *upsampler {
	u := &upsampler{
		plane: c.plane, stride: c.bw * c.nx,
		fx: c.ux, fy: c.uy,
		vw: max(1, min(ceilDiv(c.cw*c.nx, 8), c.bw*c.nx)),
		vh: max(1, min(ceilDiv(c.ch*c.ny, 8), c.bh*c.ny)),
	}
	if u.fx == 1 && u.fy == 1 {
		return u
	}
	u.out = make([]uint8, w)
	u.tmp = make([]int32, u.vw)
	u.x0, u.x1, u.wx = make([]int32, w), make([]int32, w), make([]int32, w)
	for x := 0; x < w; x++ {
		i0, i1, wt := tap(x, u.fx, u.vw)
		u.x0[x], u.x1[x], u.wx[x] = int32(i0), int32(i1), int32(wt)
	}
	return u
}

// tap returns the two source samples around output sample i for factor
// f and their blend weight (of 256) for the second, clamped to n samples.
func tap(i, f, n int) (i0, i1, w int) {
	num, den := 2*i+1-f, 2*f // source position (2i+1-f)/2f
	q := num / den
	if num%den != 0 && num < 0 {
		q--
	}
	w = (num - q*den) * 256 / den
	i0, i1 = min(max(q, 0), n-1), min(max(q+1, 0), n-1)
	return i0, i1, w
}

func (u *upsampler) row(y int) []uint8 {
	if u.fx == 1 && u.fy == 1 {
		return u.plane[y*u.stride:]
	}
	// Vertical blend, scaled by 256.
	y0, y1, wy := tap(y, u.fy, u.vh)
	r0 := u.plane[y0*u.stride : y0*u.stride+u.vw]
	r1 := u.plane[y1*u.stride : y1*u.stride+u.vw]
	tmp := u.tmp[:len(r0)]
	a, b := int32(256-wy), int32(wy)
	for i := range tmp {
		tmp[i] = int32(r0[i])*a + int32(r1[i])*b
	}
	out := u.out
	if u.fx == 1 {
		for x := range out {
			out[x] = uint8((tmp[min(x, len(tmp)-1)] + 128) >> 8)
		}
		return out
	}
	for x := range out {
		w := u.wx[x]
		out[x] = uint8((tmp[u.x0[x]]*(256-w) + tmp[u.x1[x]]*w + 1<<15) >> 16)
	}
	return out
}

// image builds the output from the planes: the luma plane itself for a
// grayscale file, otherwise opaque NRGBA.
func (d *decoder) image() image.Image {
	w, h := ceilDiv(d.width, d.scale), ceilDiv(d.height, d.scale)
	if d.ncomp == 1 {
		c := &d.comp[0]
		return &image.Gray{Pix: c.plane, Stride: c.bw * c.nx, Rect: image.Rect(0, 0, w, h)}
	}
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	var ups [4]*upsampler
	for i := 0; i < d.ncomp; i++ {
		ups[i] = d.newUpsampler(&d.comp[i], w)
	}
	cs := d.colorSpace()
	for y := 0; y < h; y++ {
		out := m.Pix[y*m.Stride : y*m.Stride+4*w]
		c0, c1, c2 := ups[0].row(y)[:w], ups[1].row(y)[:w], ups[2].row(y)[:w]
		switch cs {
		case RGB:
			for x := range w {
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0], o[1], o[2], o[3] = c0[x], c1[x], c2[x], 255
			}
		case YCbCr:
			ycc(out, c0, c1, c2)
		case CMYK, YCCK:
			k := ups[3].row(y)[:w]
			if cs == YCCK {
				ycc(out, c0, c1, c2)
			} else {
				for x := range w {
					o := out[4*x : 4*x+4 : 4*x+4]
					o[0], o[1], o[2] = c0[x], c1[x], c2[x]
				}
			}
			// Adobe files store 255-ink (so the ink of a channel is 255-v);
			// YCCK codes 255 minus those stored CMY values as YCbCr; files
			// without the Adobe marker store ink.
			invK, invCMY := !d.adobe, !d.adobe || cs == YCCK
			for x := range w {
				o := out[4*x : 4*x+4 : 4*x+4]
				kk := uint32(k[x])
				r, g, b := uint32(o[0]), uint32(o[1]), uint32(o[2])
				if invK {
					kk = 255 - kk
				}
				if invCMY {
					r, g, b = 255-r, 255-g, 255-b
				}
				o[0] = uint8((r*kk + 127) / 255)
				o[1] = uint8((g*kk + 127) / 255)
				o[2] = uint8((b*kk + 127) / 255)
				o[3] = 255
			}
		}
	}
	return m
}

// ycc converts full-range (JFIF) YCbCr rows to RGBA.
func ycc(out, y, cb, cr []uint8) {
	for x := range y {
		o := out[4*x : 4*x+4 : 4*x+4]
		yy := int32(y[x])<<16 + 1<<15
		b, r := int32(cb[x])-128, int32(cr[x])-128
		o[0] = clampRGB((yy + 91881*r) >> 16)
		o[1] = clampRGB((yy - 22554*b - 46802*r) >> 16)
		o[2] = clampRGB((yy + 116130*b) >> 16)
		o[3] = 255
	}
}

func clampRGB(v int32) uint8 {
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}
