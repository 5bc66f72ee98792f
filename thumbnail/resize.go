package thumbnail

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"sync"
)

// plan is the geometry of one render, in the source's raw (unrotated)
// pixel coordinates.
type plan struct {
	crop   image.Rectangle // part of the source to use
	tw, th int             // raw-space size to resample crop to
	ow, oh int             // final (oriented) output size
}

// transposed reports whether an EXIF orientation swaps width and height.
func transposed(o int) bool { return o >= 5 && o <= 8 }

// makePlan works out crop and sizes for sp on a source with raw bounds b
// and the given EXIF orientation.
func makePlan(b image.Rectangle, orientation int, sp Spec, maxDim int) (plan, error) {
	sw, sh := b.Dx(), b.Dy()
	if transposed(orientation) {
		sw, sh = sh, sw
	}
	fw, fh := float64(sw), float64(sh)
	var ow, oh int
	cw, ch := sw, sh // oriented crop size
	switch sp.Mode {
	case Fill:
		scale := math.Max(float64(sp.Width)/fw, float64(sp.Height)/fh)
		ow, oh = sp.Width, sp.Height
		if scale > 1 && !sp.Upscale {
			// Shrink the box to fit the source, keeping its shape; no scaling.
			ow = max(1, int(math.Round(float64(sp.Width)/scale)))
			oh = max(1, int(math.Round(float64(sp.Height)/scale)))
			scale = 1
		}
		cw = min(sw, max(1, int(math.Round(float64(ow)/scale))))
		ch = min(sh, max(1, int(math.Round(float64(oh)/scale))))
	default:
		var scale float64
		switch {
		case sp.Width > 0 && sp.Height > 0:
			scale = math.Min(float64(sp.Width)/fw, float64(sp.Height)/fh)
		case sp.Width > 0:
			scale = float64(sp.Width) / fw
		default:
			scale = float64(sp.Height) / fh
		}
		if scale > 1 && !sp.Upscale {
			scale = 1
		}
		ow = max(1, int(math.Round(fw*scale)))
		oh = max(1, int(math.Round(fh*scale)))
	}
	if ow > maxDim || oh > maxDim {
		return plan{}, fmt.Errorf("%w: %dx%d is larger than the limit of %d pixels a side", ErrOutputTooLarge, ow, oh, maxDim)
	}
	p := plan{ow: ow, oh: oh, tw: ow, th: oh}
	rcw, rch := cw, ch
	if transposed(orientation) {
		p.tw, p.th = oh, ow
		rcw, rch = ch, cw
	}
	x0 := b.Min.X + (b.Dx()-rcw)/2
	y0 := b.Min.Y + (b.Dy()-rch)/2
	p.crop = image.Rect(x0, y0, x0+rcw, y0+rch)
	return p, nil
}

// thumb resamples img to the plan: an integer box pre-shrink when the
// decoded pixels are more than four times the target, then Lanczos-3,
// then EXIF orientation.
func thumb(img image.Image, p plan, orientation int) *image.NRGBA {
	src := img
	if p.crop != img.Bounds() {
		if si, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok {
			src = si.SubImage(p.crop)
		} else {
			src = toNRGBA(img).SubImage(p.crop)
		}
	}
	// Box-shrink by the largest integer k that leaves at least twice the
	// target for the Lanczos pass (a scaled JPEG decode usually leaves
	// less than four times, so it goes straight to Lanczos).
	k := int(min(float64(p.crop.Dx())/float64(p.tw), float64(p.crop.Dy())/float64(p.th)) / 2)
	if k >= 2 {
		src = boxShrink(src, k)
	}
	return orient(resample(src, p.tw, p.th), orientation)
}

// toNRGBA converts any image to NRGBA (fast for the types decoders
// return).
func toNRGBA(img image.Image) *image.NRGBA {
	if m, ok := img.(*image.NRGBA); ok {
		return m
	}
	b := img.Bounds()
	m := image.NewNRGBA(b)
	if g, ok := img.(*image.Gray); ok {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := g.Pix[g.PixOffset(b.Min.X, y):][:b.Dx()]
			out := m.Pix[m.PixOffset(b.Min.X, y):]
			for x, v := range row {
				out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = v, v, v, 255
			}
		}
		return m
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			o := m.Pix[m.PixOffset(x, y):]
			o[0], o[1], o[2], o[3] = c.R, c.G, c.B, c.A
		}
	}
	return m
}

// taps are one output sample's filter: weights for source samples from
// start on.
type taps struct {
	start int
	w     []float32
}

// lanczosTaps computes Lanczos-3 filters mapping n source samples to m,
// centre-aligned, widened by the reduction factor when shrinking and
// normalised to sum 1 (the edges keep only the taps inside the image).
func lanczosTaps(m, n int) []taps {
	scale := float64(n) / float64(m)
	radius := 3.0 * max(scale, 1)
	out := make([]taps, m)
	for i := range out {
		c := (float64(i)+0.5)*scale - 0.5
		lo := max(int(math.Ceil(c-radius)), 0)
		hi := min(int(math.Floor(c+radius)), n-1)
		w := make([]float32, 0, max(hi-lo+1, 1))
		var sum float64
		for j := lo; j <= hi; j++ {
			v := lanczos3((float64(j) - c) / max(scale, 1))
			w = append(w, float32(v))
			sum += v
		}
		if sum != 0 {
			for j := range w {
				w[j] = float32(float64(w[j]) / sum)
			}
		}
		out[i] = taps{lo, w}
	}
	return out
}

func lanczos3(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x == 0:
		return 1
	case x >= 3:
		return 0
	}
	px := math.Pi * x
	return 3 * math.Sin(px) * math.Sin(px/3) / (px * px)
}

// resample resizes src to w×h with a separable Lanczos-3 filter: each
// source row is filtered horizontally once, into a ring of as many rows
// as the vertical filter spans, and output rows are filtered from the
// ring. Gray is one channel and opaque colour three until the output;
// translucent NRGBA is filtered with premultiplied alpha so hidden
// colours do not bleed.
func resample(src image.Image, w, h int) *image.NRGBA {
	var pix []uint8
	var stride, ch int
	b := src.Bounds()
	switch m := src.(type) {
	case *image.Gray:
		pix, stride, ch = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1
	default:
		n := toNRGBA(src)
		pix, stride, ch = n.Pix[n.PixOffset(b.Min.X, b.Min.Y):], n.Stride, 3
	}
	sw, sh := b.Dx(), b.Dy()
	if ch == 3 {
	scan:
		for y := 0; y < sh; y++ {
			row := pix[y*stride : y*stride+4*sw]
			for i := 3; i < len(row); i += 4 {
				if row[i] != 255 {
					ch = 4 // translucent: premultiplied RGBA
					break scan
				}
			}
		}
	}
	xt, yt := lanczosTaps(w, sw), lanczosTaps(h, sh)
	span := 1
	for _, t := range yt {
		span = max(span, len(t.w))
	}
	ring := make([]float32, span*w*ch)
	held := make([]int, span) // source row held in each ring slot, -1 for none
	for i := range held {
		held[i] = -1
	}
	horizontal := func(y int) []float32 {
		slot := y % span
		out := ring[slot*w*ch : (slot+1)*w*ch]
		if held[slot] == y {
			return out
		}
		held[slot] = y
		row := pix[y*stride:]
		for x, t := range xt {
			px := row[4*t.start:]
			switch ch {
			case 3:
				var r, g, bl float32
				for i, f := range t.w {
					p := px[4*i : 4*i+3 : 4*i+3]
					r += f * float32(p[0])
					g += f * float32(p[1])
					bl += f * float32(p[2])
				}
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = r, g, bl
			default:
				var r, g, bl, a float32
				for i, f := range t.w {
					p := px[4*i : 4*i+4 : 4*i+4]
					fa := f * float32(p[3])
					r += fa * float32(p[0])
					g += fa * float32(p[1])
					bl += fa * float32(p[2])
					a += fa
				}
				o := out[4*x : 4*x+4 : 4*x+4]
				o[0], o[1], o[2], o[3] = r, g, bl, a
			}
		}
		return out
	}
	if ch == 1 {
		// Gray sources index the row by sample, not by 4 bytes.
		horizontal = func(y int) []float32 {
			slot := y % span
			out := ring[slot*w : (slot+1)*w]
			if held[slot] == y {
				return out
			}
			held[slot] = y
			row := pix[y*stride:]
			for x, t := range xt {
				px := row[t.start:]
				var s float32
				for i, f := range t.w {
					s += f * float32(px[i])
				}
				out[x] = s
			}
			return out
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	acc := make([]float32, w*ch)
	for y, t := range yt {
		clear(acc)
		for i, f := range t.w {
			for x, v := range horizontal(t.start + i) {
				acc[x] += f * v
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for x := 0; x < w; x++ {
			o := out[4*x : 4*x+4 : 4*x+4]
			switch ch {
			case 1:
				v := round8(acc[x])
				o[0], o[1], o[2], o[3] = v, v, v, 255
			case 3:
				a := acc[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2], o[3] = round8(a[0]), round8(a[1]), round8(a[2]), 255
			default:
				a := acc[4*x+3]
				if a <= 0 {
					o[0], o[1], o[2], o[3] = 0, 0, 0, 0
					continue
				}
				o[0], o[1], o[2] = round8(acc[4*x]/a), round8(acc[4*x+1]/a), round8(acc[4*x+2]/a)
				o[3] = round8(a)
			}
		}
	}
	return dst
}

func round8(v float32) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// orient applies an EXIF orientation (2–8) to m.
func orient(m *image.NRGBA, orientation int) *image.NRGBA {
	if orientation < 2 || orientation > 8 {
		return m
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dw, dh := w, h
	if transposed(orientation) {
		dw, dh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			var sx, sy int
			switch orientation {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // rotated 180°
				sx, sy = w-1-x, h-1-y
			case 4: // upside down mirror
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // needs 90° clockwise
				sx, sy = y, h-1-x
			case 7: // transverse
				sx, sy = w-1-y, h-1-x
			case 8: // needs 90° counter-clockwise
				sx, sy = w-1-y, x
			}
			copy(dst.Pix[y*dst.Stride+4*x:y*dst.Stride+4*x+4], m.Pix[sy*m.Stride+4*sx:])
		}
	}
	return dst
}

// boxShrink averages k×k blocks. It works on the decoded colour model where
// it can (YCbCr planes, gray, NRGBA/RGBA, paletted) and through At
// otherwise, never converting the full-size image first.
func boxShrink(img image.Image, k int) image.Image {
	b := img.Bounds()
	dw, dh := b.Dx()/k, b.Dy()/k
	switch m := img.(type) {
	case *image.YCbCr:
		dst := image.NewYCbCr(image.Rect(0, 0, dw, dh), m.SubsampleRatio)
		shrinkPlane(dst.Y, dst.YStride, dw, dh, m.Y[m.YOffset(b.Min.X, b.Min.Y):], m.YStride, b.Dx(), b.Dy(), k)
		cr := chromaRect(b, m.SubsampleRatio)
		dcr := chromaRect(dst.Rect, m.SubsampleRatio)
		co := m.COffset(b.Min.X, b.Min.Y)
		shrinkPlane(dst.Cb, dst.CStride, dcr.Dx(), dcr.Dy(), m.Cb[co:], m.CStride, cr.Dx(), cr.Dy(), k)
		shrinkPlane(dst.Cr, dst.CStride, dcr.Dx(), dcr.Dy(), m.Cr[co:], m.CStride, cr.Dx(), cr.Dy(), k)
		return dst
	case *image.Gray:
		dst := image.NewGray(image.Rect(0, 0, dw, dh))
		shrinkPlane(dst.Pix, dst.Stride, dw, dh, m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, b.Dx(), b.Dy(), k)
		return dst
	case *image.NRGBA:
		return shrinkRGBA(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, dw, dh, k, true)
	case *image.RGBA:
		return shrinkRGBA(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, dw, dh, k, false)
	case *image.Paletted:
		return shrinkAt(img, dw, dh, k, paletteAt(m))
	}
	return shrinkAt(img, dw, dh, k, func(x, y int) (r, g, bl, a uint32) {
		r, g, bl, a = img.At(x, y).RGBA()
		return r >> 8, g >> 8, bl >> 8, a >> 8
	})
}

// chromaRect is the chroma-plane rectangle covering luma rectangle r.
func chromaRect(r image.Rectangle, ratio image.YCbCrSubsampleRatio) image.Rectangle {
	switch ratio {
	case image.YCbCrSubsampleRatio422:
		return image.Rect(r.Min.X/2, r.Min.Y, (r.Max.X+1)/2, r.Max.Y)
	case image.YCbCrSubsampleRatio420:
		return image.Rect(r.Min.X/2, r.Min.Y/2, (r.Max.X+1)/2, (r.Max.Y+1)/2)
	case image.YCbCrSubsampleRatio440:
		return image.Rect(r.Min.X, r.Min.Y/2, r.Max.X, (r.Max.Y+1)/2)
	case image.YCbCrSubsampleRatio411:
		return image.Rect(r.Min.X/4, r.Min.Y, (r.Max.X+3)/4, r.Max.Y)
	case image.YCbCrSubsampleRatio410:
		return image.Rect(r.Min.X/4, r.Min.Y/2, (r.Max.X+3)/4, (r.Max.Y+1)/2)
	}
	return r
}

var sumPool = sync.Pool{New: func() any { return new([]uint32) }}

// shrinkPlane writes into dst (dw×dh) the k×k block averages of src
// (sw×sh), clamping blocks at the source's edges.
func shrinkPlane(dst []uint8, dstride, dw, dh int, src []uint8, sstride, sw, sh, k int) {
	sp := sumPool.Get().(*[]uint32)
	if cap(*sp) < dw {
		*sp = make([]uint32, dw)
	}
	sums := (*sp)[:dw]
	defer sumPool.Put(sp)
	for dy := 0; dy < dh; dy++ {
		clear(sums)
		y0 := dy * k
		y1 := min(y0+k, sh)
		for y := y0; y < y1; y++ {
			row := src[y*sstride:]
			row = row[:min(len(row), sw)]
			full := min(dw, len(row)/k)
			for dx := 0; dx < full; dx++ {
				blk := row[dx*k : dx*k+k]
				var s uint32
				for _, v := range blk {
					s += uint32(v)
				}
				sums[dx] += s
			}
			for dx := full; dx < dw; dx++ { // partial block at the right edge
				x0 := dx * k
				var s uint32
				for x := x0; x < min(x0+k, len(row)); x++ {
					s += uint32(row[x])
				}
				sums[dx] += s
			}
		}
		rows := uint32(max(y1-y0, 1))
		out := dst[dy*dstride : dy*dstride+dw]
		for dx := range out {
			cols := uint32(max(min(k, sw-dx*k), 1))
			n := rows * cols
			out[dx] = uint8((sums[dx] + n/2) / n)
		}
	}
}

// shrinkRGBA averages k×k blocks of 8-bit RGBA pixels. For non-premultiplied
// input (NRGBA) colours are weighted by alpha so transparent pixels do not
// bleed their hidden colour into the result.
func shrinkRGBA(src []uint8, stride, dw, dh, k int, nonPremul bool) image.Image {
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	sums := make([]uint64, 4*dw)
	for dy := 0; dy < dh; dy++ {
		clear(sums)
		for y := dy * k; y < dy*k+k; y++ {
			row := src[y*stride:]
			for dx := 0; dx < dw; dx++ {
				s := sums[4*dx : 4*dx+4]
				px := row[4*dx*k : 4*(dx*k+k)]
				for i := 0; i < len(px); i += 4 {
					a := uint64(px[i+3])
					if nonPremul {
						s[0] += uint64(px[i]) * a
						s[1] += uint64(px[i+1]) * a
						s[2] += uint64(px[i+2]) * a
					} else {
						s[0] += uint64(px[i]) * 255
						s[1] += uint64(px[i+1]) * 255
						s[2] += uint64(px[i+2]) * 255
					}
					s[3] += a
				}
			}
		}
		writeAvg(dst, dy, sums, uint64(k*k))
	}
	return dst
}

// writeAvg turns premultiplied (×255) sums into one NRGBA row.
func writeAvg(dst *image.NRGBA, dy int, sums []uint64, n uint64) {
	out := dst.Pix[dy*dst.Stride:]
	for dx := 0; dx < dst.Rect.Dx(); dx++ {
		s := sums[4*dx : 4*dx+4]
		o := out[4*dx : 4*dx+4]
		if s[3] == 0 {
			o[0], o[1], o[2], o[3] = 0, 0, 0, 0
			continue
		}
		o[0] = uint8(min(255, (s[0]+s[3]/2)/s[3]))
		o[1] = uint8(min(255, (s[1]+s[3]/2)/s[3]))
		o[2] = uint8(min(255, (s[2]+s[3]/2)/s[3]))
		o[3] = uint8((s[3] + n/2) / n)
	}
}

// paletteAt returns a premultiplied 8-bit pixel reader for a paletted image.
func paletteAt(m *image.Paletted) func(x, y int) (r, g, b, a uint32) {
	var pal [256][4]uint32
	for i, c := range m.Palette {
		r, g, b, a := c.RGBA()
		pal[i] = [4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}
	}
	return func(x, y int) (r, g, b, a uint32) {
		p := &pal[m.Pix[m.PixOffset(x, y)]]
		return p[0], p[1], p[2], p[3]
	}
}

// shrinkAt averages k×k blocks read through at, which returns premultiplied
// 8-bit components.
func shrinkAt(img image.Image, dw, dh, k int, at func(x, y int) (r, g, b, a uint32)) image.Image {
	b := img.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	sums := make([]uint64, 4*dw)
	for dy := 0; dy < dh; dy++ {
		clear(sums)
		for y := b.Min.Y + dy*k; y < b.Min.Y+dy*k+k; y++ {
			for dx := 0; dx < dw; dx++ {
				s := sums[4*dx : 4*dx+4]
				for x := b.Min.X + dx*k; x < b.Min.X+dx*k+k; x++ {
					r, g, bl, a := at(x, y)
					s[0] += uint64(r) * 255
					s[1] += uint64(g) * 255
					s[2] += uint64(bl) * 255
					s[3] += uint64(a)
				}
			}
		}
		writeAvg(dst, dy, sums, uint64(k*k))
	}
	return dst
}

// opaque reports whether every pixel of m is fully opaque.
func opaque(m *image.NRGBA) bool {
	for y := 0; y < m.Rect.Dy(); y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*m.Rect.Dx()]
		for i := 3; i < len(row); i += 4 {
			if row[i] != 0xFF {
				return false
			}
		}
	}
	return true
}

// flatten composites m onto white in place, for JPEG output.
func flatten(m *image.NRGBA) {
	for y := 0; y < m.Rect.Dy(); y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*m.Rect.Dx()]
		for i := 0; i < len(row); i += 4 {
			a := uint32(row[i+3])
			if a == 0xFF {
				continue
			}
			for c := 0; c < 3; c++ {
				row[i+c] = uint8((uint32(row[i+c])*a + 255*(255-a) + 127) / 255)
			}
			row[i+3] = 0xFF
		}
	}
}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

var pngEnc = &png.Encoder{BufferPool: &pngPool{}}

// encode writes m in format f (JPEG or PNG). The encoders write no metadata,
// so nothing from the source (EXIF, GPS, ICC, comments) survives. An
// opaque image whose pixels are all gray is written as a one-channel
// image, so gray sources stay gray (and smaller).
func encode(m *image.NRGBA, f Format, quality int) ([]byte, string, error) {
	var buf bytes.Buffer
	buf.Grow(16 << 10)
	if f == JPEG {
		flatten(m)
		var img image.Image
		if g := grayOf(m); g != nil {
			img = g
		} else {
			// Every pixel is opaque now, so the NRGBA bytes are valid RGBA and
			// the JPEG encoder can take its fast path.
			img = &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
		}
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), "image/jpeg", nil
	}
	var img image.Image = m
	if g := grayOf(m); g != nil {
		img = g
	}
	if err := pngEnc.Encode(&buf, img); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "image/png", nil
}

// grayOf returns m as a Gray image if every pixel is opaque with R = G = B,
// else nil.
func grayOf(m *image.NRGBA) *image.Gray {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	for y := 0; y < h; y++ {
		row := m.Pix[y*m.Stride : y*m.Stride+4*w]
		for i := 0; i < len(row); i += 4 {
			if row[i+3] != 255 || row[i] != row[i+1] || row[i] != row[i+2] {
				return nil
			}
		}
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		row := m.Pix[y*m.Stride:]
		out := g.Pix[y*g.Stride : y*g.Stride+w]
		for x := range out {
			out[x] = row[4*x]
		}
	}
	return g
}

// outputFormat decides the format when the spec leaves it to the source.
func outputFormat(f Format, source string, m *image.NRGBA) Format {
	if f != Auto {
		return f
	}
	switch source {
	case "jpeg":
		return JPEG
	case "webp":
		if opaque(m) {
			return JPEG
		}
	}
	return PNG
}
