package thumbnail

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/png"

	"golang.org/x/image/webp"

	"github.com/sharednothing/sharednothing/thumbnail/internal/jpg"
)

// Errors a render can fail with. The handler maps each to its status and
// writes the message as a plain-text body.
var (
	// ErrSourceTooLarge: the source has more bytes than MaxSourceBytes or
	// more pixels than MaxSourcePixels (413).
	ErrSourceTooLarge = errors.New("thumbnail: source image too large")
	// ErrUnsupportedFormat: the source bytes are not JPEG, PNG, GIF or WebP,
	// whatever the file is called (415).
	ErrUnsupportedFormat = errors.New("thumbnail: unsupported image format")
	// ErrCorruptImage: the source is truncated or malformed (422).
	ErrCorruptImage = errors.New("thumbnail: corrupt image")
	// ErrOutputTooLarge: the thumbnail would be larger than MaxDimension (400).
	ErrOutputTooLarge = errors.New("thumbnail: output too large")
)

// sniff identifies the format from magic bytes, never from a file name.
func sniff(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// decoded is a source image ready to resize.
type decoded struct {
	img         image.Image
	format      string // jpeg, png, gif, webp
	orientation int    // EXIF orientation 1–8 (1 when absent)
	plan        plan   // geometry, in img's pixel coordinates
}

// decode is decodeContext without cancellation.
func decode(data []byte, sp Spec, maxPixels int64, maxDim int) (decoded, error) {
	return decodeContext(context.Background(), data, sp, maxPixels, maxDim)
}

// decodeContext sniffs, checks the header against the limits, plans the
// geometry for sp, then decodes data: a JPEG at the smallest of 1/8, 1/4,
// 1/2 and 1/1 scale that still leaves at least the target size (the JPEG
// decoder checks ctx once per row of blocks), anything else in full.
// Decoder panics are recovered and reported as ErrCorruptImage.
func decodeContext(ctx context.Context, data []byte, sp Spec, maxPixels int64, maxDim int) (d decoded, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = decoded{}, fmt.Errorf("%w: decoder failed: %v", ErrCorruptImage, p)
		}
	}()
	d.format = sniff(data)
	var cfgFn func([]byte) (image.Config, error)
	var decFn func([]byte) (image.Image, error)
	switch d.format {
	case "jpeg":
		cfgFn = func(b []byte) (image.Config, error) {
			c, err := jpg.DecodeConfig(b)
			return image.Config{Width: c.Width, Height: c.Height}, err
		}
	case "png":
		cfgFn = func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
	case "gif":
		cfgFn = func(b []byte) (image.Config, error) { return gif.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return gif.Decode(bytes.NewReader(b)) }
	case "webp":
		cfgFn = func(b []byte) (image.Config, error) { return webp.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) {
			m, err := webp.Decode(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return fromLimitedRange(m), nil
		}
	default:
		return decoded{}, fmt.Errorf("%w: only JPEG, PNG, GIF and WebP images are accepted", ErrUnsupportedFormat)
	}
	cfg, err := cfgFn(data)
	if errors.Is(err, jpg.ErrUnsupported) {
		return decoded{}, fmt.Errorf("%w: %v", ErrUnsupportedFormat, err)
	}
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %s header: %v", ErrCorruptImage, d.format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return decoded{}, fmt.Errorf("%w: %s declares %dx%d pixels", ErrCorruptImage, d.format, cfg.Width, cfg.Height)
	}
	pixels := int64(cfg.Width) * int64(cfg.Height)
	frames := int64(1)
	if d.format == "gif" {
		n, err := gifFrames(data)
		if err != nil {
			return decoded{}, fmt.Errorf("%w: gif: %v", ErrCorruptImage, err)
		}
		frames = max(n, 1)
	}
	if pixels > maxPixels || pixels*frames > maxPixels {
		return decoded{}, fmt.Errorf("%w: %dx%d pixels × %d frames is more than the limit of %d pixels",
			ErrSourceTooLarge, cfg.Width, cfg.Height, frames, maxPixels)
	}
	d.orientation = 1
	if d.format == "jpeg" {
		d.orientation = jpegOrientation(data)
	}
	full := image.Rect(0, 0, cfg.Width, cfg.Height)
	if d.plan, err = makePlan(full, d.orientation, sp, maxDim); err != nil {
		return decoded{}, err
	}
	if d.format == "jpeg" {
		return decodeJPEG(ctx, data, d, maxPixels)
	}
	img, err := decFn(data)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %s: %v", ErrCorruptImage, d.format, err)
	}
	if img.Bounds() != full {
		return decoded{}, fmt.Errorf("%w: %s: decoded %v, header said %v", ErrCorruptImage, d.format, img.Bounds().Size(), full.Size())
	}
	d.img = img
	return d, nil
}

// jpegScale is the decode scale denominator (8, 4, 2 or 1) for a JPEG.
// The scaled inverse DCT is close to a box filter and aliases a little,
// so, like libvips, a baseline file is decoded at the largest reduction
// that leaves at least twice the target for the Lanczos pass (1.5 times
// for 1/2, which costs a quarter of a full decode and measured within
// 0.4 dB of it). A progressive file is decoded at the largest reduction
// that still leaves the target itself: at 1/8 its luma AC scans are never
// read, which is what makes it cheap, at a cost of about 2 dB.
func jpegScale(p plan, progressive bool) int {
	for _, s := range []int{8, 4, 2} {
		margin := 2.0
		switch {
		case progressive:
			margin = 1
		case s == 2:
			margin = 1.5
		}
		if float64(p.crop.Dx()/s) >= margin*float64(p.tw) && float64(p.crop.Dy()/s) >= margin*float64(p.th) {
			return s
		}
	}
	return 1
}

// decodeJPEG decodes at the scale the plan allows and maps the crop to
// the scaled pixels. A truncated file is refused as corrupt (the decoder
// stops where the data ends) rather than served, and cached, half gray.
func decodeJPEG(ctx context.Context, data []byte, d decoded, maxPixels int64) (decoded, error) {
	cfg, err := jpg.DecodeConfig(data)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %v", ErrCorruptImage, err)
	}
	s := jpegScale(d.plan, cfg.Progressive)
	img, err := jpg.Decode(ctx, data, jpg.Options{Scale: s, MaxPixels: maxPixels})
	switch {
	case err == nil:
	case errors.Is(err, jpg.ErrUnsupported):
		return decoded{}, fmt.Errorf("%w: %v", ErrUnsupportedFormat, err)
	case errors.Is(err, jpg.ErrTooLarge):
		return decoded{}, fmt.Errorf("%w: %v", ErrSourceTooLarge, err)
	case ctx.Err() != nil:
		return decoded{}, err
	default:
		return decoded{}, fmt.Errorf("%w: %v", ErrCorruptImage, err)
	}
	c, b := d.plan.crop, img.Bounds()
	d.plan.crop = image.Rect(c.Min.X/s, c.Min.Y/s, (c.Max.X+s-1)/s, (c.Max.Y+s-1)/s).Intersect(b)
	d.img = img
	return d, nil
}

// fromLimitedRange converts the YCbCr planes x/image/webp returns, which
// hold BT.601 limited-range values (Y 16–235, chroma 16–240, as VP8
// codes them), to NRGBA; image.YCbCr's own conversion would treat them as
// full range and flatten the tones. Chroma is upsampled with a centred
// triangle filter. Other images pass through.
func fromLimitedRange(m image.Image) image.Image {
	var yc *image.YCbCr
	var alpha []uint8
	var astride int
	switch m := m.(type) {
	case *image.YCbCr:
		yc = m
	case *image.NYCbCrA:
		yc, alpha, astride = &m.YCbCr, m.A, m.AStride
	default:
		return m
	}
	if yc.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return m
	}
	b := yc.Rect
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cw, ch := (w+1)/2, (h+1)/2
	cb, cr := make([]int32, w), make([]int32, w)
	for y := 0; y < h; y++ {
		// Vertical then horizontal 3:1 blends of the two nearest chroma rows.
		y0, y1 := (y-1)>>1, (y+1)>>1
		w0, w1 := int32(1), int32(3)
		if y&1 == 0 {
			w0, w1 = 1, 3
			y0, y1 = (y>>1)-1, y>>1
		} else {
			w0, w1 = 3, 1
			y0, y1 = y>>1, (y>>1)+1
		}
		y0, y1 = min(max(y0, 0), ch-1), min(max(y1, 0), ch-1)
		row := func(dst []int32, pl []uint8) {
			o0, o1 := yc.CStride*y0, yc.CStride*y1
			for x := 0; x < w; x++ {
				var x0, x1 int
				var a0, a1 int32
				if x&1 == 0 {
					x0, x1, a0, a1 = (x>>1)-1, x>>1, 1, 3
				} else {
					x0, x1, a0, a1 = x>>1, (x>>1)+1, 3, 1
				}
				x0, x1 = min(max(x0, 0), cw-1), min(max(x1, 0), cw-1)
				v0 := int32(pl[o0+x0])*a0 + int32(pl[o0+x1])*a1
				v1 := int32(pl[o1+x0])*a0 + int32(pl[o1+x1])*a1
				dst[x] = v0*w0 + v1*w1 // ×16
			}
		}
		row(cb, yc.Cb)
		row(cr, yc.Cr)
		yr := yc.Y[y*yc.YStride:]
		o := out.Pix[y*out.Stride:]
		for x := 0; x < w; x++ {
			// BT.601 limited range, 16.16 fixed point; chroma is ×16.
			yy := (int32(yr[x])-16)*76309 + 1<<15
			u, v := cb[x]-128*16, cr[x]-128*16
			r := (yy + (104597*v)>>4) >> 16
			g := (yy - (25675*u)>>4 - (53279*v)>>4) >> 16
			bl := (yy + (132201*u)>>4) >> 16
			o[4*x], o[4*x+1], o[4*x+2], o[4*x+3] = clamp255(r), clamp255(g), clamp255(bl), 255
			if alpha != nil {
				o[4*x+3] = alpha[y*astride+x]
			}
		}
	}
	return out
}

func clamp255(v int32) uint8 { return uint8(min(max(v, 0), 255)) }

// gifFrames counts the image descriptors in a GIF without decoding pixels.
func gifFrames(b []byte) (int64, error) {
	if len(b) < 13 {
		return 0, errors.New("short header")
	}
	p := 13
	if b[10]&0x80 != 0 {
		p += 3 << (int(b[10]&7) + 1)
	}
	skipBlocks := func() error {
		for {
			if p >= len(b) {
				return errors.New("truncated")
			}
			n := int(b[p])
			p++
			if n == 0 {
				return nil
			}
			p += n
		}
	}
	var frames int64
	for p < len(b) {
		switch b[p] {
		case 0x21: // extension: label, then sub-blocks
			p += 2
			if err := skipBlocks(); err != nil {
				return 0, err
			}
		case 0x2C: // image descriptor
			if p+10 > len(b) {
				return 0, errors.New("truncated")
			}
			flags := b[p+9]
			p += 10
			if flags&0x80 != 0 {
				p += 3 << (int(flags&7) + 1)
			}
			p++ // LZW minimum code size
			if err := skipBlocks(); err != nil {
				return 0, err
			}
			frames++
		case 0x3B: // trailer
			return frames, nil
		default:
			return 0, fmt.Errorf("unknown block 0x%02x", b[p])
		}
	}
	return frames, nil
}

// jpegOrientation returns the EXIF orientation (1–8) of a JPEG, or 1.
func jpegOrientation(b []byte) int {
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xFF {
			return 1
		}
		marker := b[p+1]
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF {
			p += 2
			if marker == 0xFF {
				p--
			}
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan: no EXIF after here
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		if n < 2 || p+2+n > len(b) {
			return 1
		}
		seg := b[p+4 : p+2+n]
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			return exifOrientation(seg[6:])
		}
		p += 2 + n
	}
	return 1
}

// exifOrientation reads tag 0x0112 from IFD0 of a TIFF structure.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 1
	}
	n := int64(bo.Uint16(t[off:]))
	for i := int64(0); i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 {
			v := int(bo.Uint16(t[e+8:]))
			if v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}
