package thumbwebp

import (
	"image"
	"image/draw"
)

// ssim is the mean structural similarity of two images' luma (BT.601) over
// 8×8 windows every 4 pixels, with the usual constants for 8-bit data. It
// is what "equal quality" means in the measurements here.
func ssim(a, b image.Image) float64 {
	ya, yb := luma(a), luma(b)
	w, h := a.Bounds().Dx(), a.Bounds().Dy()
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var sum float64
	var n int
	for y := 0; y+8 <= h; y += 4 {
		for x := 0; x+8 <= w; x += 4 {
			var sa, sb, saa, sbb, sab float64
			for j := y; j < y+8; j++ {
				for i := x; i < x+8; i++ {
					p, q := ya[j*w+i], yb[j*w+i]
					sa += p
					sb += q
					saa += p * p
					sbb += q * q
					sab += p * q
				}
			}
			const k = 64.0
			ma, mb := sa/k, sb/k
			va, vb := saa/k-ma*ma, sbb/k-mb*mb
			cov := sab/k - ma*mb
			sum += ((2*ma*mb + c1) * (2*cov + c2)) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	return sum / float64(n)
}

func luma(m image.Image) []float64 {
	b := m.Bounds()
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), m, b.Min, draw.Src)
	y := make([]float64, b.Dx()*b.Dy())
	for i := range y {
		p := rgba.Pix[4*i:]
		y[i] = 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
	}
	return y
}

// webpRGB returns an image decoded from WebP in RGB: its YCbCr planes
// converted as WebP defines them (see limitedRange).
func webpRGB(m image.Image) image.Image {
	switch m := m.(type) {
	case *image.YCbCr:
		return limitedRange(m)
	case *image.NYCbCrA:
		return limitedRange(&m.YCbCr)
	}
	return m
}

// limitedRange converts WebP's YCbCr planes, which are BT.601 limited
// range (Y 16–235), to RGB. Go's image.YCbCr treats planes as full range
// (JPEG's convention), which shifts a WebP's tones (blue by +13 levels on
// average on these photos) and would make WebP look worse than it is.
func limitedRange(m *image.YCbCr) *image.NRGBA {
	b := m.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	clamp := func(v float64) uint8 { return uint8(max(0, min(255, v+0.5))) }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			yy := 1.164 * (float64(m.Y[m.YOffset(x, y)]) - 16)
			cb := float64(m.Cb[m.COffset(x, y)]) - 128
			cr := float64(m.Cr[m.COffset(x, y)]) - 128
			i := out.PixOffset(x-b.Min.X, y-b.Min.Y)
			out.Pix[i+0] = clamp(yy + 1.596*cr)
			out.Pix[i+1] = clamp(yy - 0.392*cb - 0.813*cr)
			out.Pix[i+2] = clamp(yy + 2.017*cb)
			out.Pix[i+3] = 0xFF
		}
	}
	return out
}
