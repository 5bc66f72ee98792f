package thumbnail

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"sync"

	"github.com/disintegration/imaging"
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

// thumb resamples img to the plan: an integer box pre-shrink on the decoded
// pixels (YCbCr planes for JPEG) to about twice the target, then Lanczos
// on the small image, then EXIF orientation.
func thumb(img image.Image, p plan, orientation int) *image.NRGBA {
	src := img
	if p.crop != img.Bounds() {
		if si, ok := img.(interface {
			SubImage(image.Rectangle) image.Image
		}); ok {
			src = si.SubImage(p.crop)
		} else {
			src = imaging.Crop(img, p.crop)
		}
	}
	// Box-shrink by the largest integer k that leaves at least twice the
	// target for the Lanczos pass (a scaled JPEG decode usually leaves
	// less than four times, so it goes straight to Lanczos).
	k := int(min(float64(p.crop.Dx())/float64(p.tw), float64(p.crop.Dy())/float64(p.th)) / 2)
	if k >= 2 {
		src = boxShrink(src, k)
	}
	var out *image.NRGBA
	if b := src.Bounds(); b.Dx() == p.tw && b.Dy() == p.th {
		out = imaging.Clone(src)
	} else {
		out = imaging.Resize(src, p.tw, p.th, imaging.Lanczos)
	}
	switch orientation {
	case 2:
		out = imaging.FlipH(out)
	case 3:
		out = imaging.Rotate180(out)
	case 4:
		out = imaging.FlipV(out)
	case 5:
		out = imaging.Transpose(out)
	case 6:
		out = imaging.Rotate270(out)
	case 7:
		out = imaging.Transverse(out)
	case 8:
		out = imaging.Rotate90(out)
	}
	return out
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
// so nothing from the source (EXIF, GPS, ICC, comments) survives.
func encode(m *image.NRGBA, f Format, quality int) ([]byte, string, error) {
	var buf bytes.Buffer
	buf.Grow(16 << 10)
	if f == JPEG {
		flatten(m)
		// Every pixel is opaque now, so the NRGBA bytes are valid RGBA and the
		// JPEG encoder can take its fast path.
		rgba := &image.RGBA{Pix: m.Pix, Stride: m.Stride, Rect: m.Rect}
		if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: quality}); err != nil {
			return nil, "", err
		}
		return buf.Bytes(), "image/jpeg", nil
	}
	if err := pngEnc.Encode(&buf, m); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "image/png", nil
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
