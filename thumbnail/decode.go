package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/webp"

	"github.com/sharednothing/sharednothing/thumbnail/internal/jpegdc"
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

// dcMin is how many times larger than the target a JPEG's crop must be for
// the 1/8-scale DC decode: 10 leaves at least 1.25× the target for the
// final Lanczos pass.
const dcMin = 10

// decode sniffs, checks limits with DecodeConfig, plans the geometry for sp,
// then decodes data: a large JPEG at 1/8 scale when that still leaves
// enough pixels, anything else in full. Decoder panics are recovered and
// reported as ErrCorruptImage.
func decode(data []byte, sp Spec, maxPixels int64, maxDim int) (d decoded, err error) {
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
		cfgFn = func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
	case "png":
		cfgFn = func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
	case "gif":
		cfgFn = func(b []byte) (image.Config, error) { return gif.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return gif.Decode(bytes.NewReader(b)) }
	case "webp":
		cfgFn = func(b []byte) (image.Config, error) { return webp.DecodeConfig(bytes.NewReader(b)) }
		decFn = func(b []byte) (image.Image, error) { return webp.Decode(bytes.NewReader(b)) }
	default:
		return decoded{}, fmt.Errorf("%w: only JPEG, PNG, GIF and WebP images are accepted", ErrUnsupportedFormat)
	}
	cfg, err := cfgFn(data)
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
	if c := d.plan.crop; d.format == "jpeg" && c.Dx() >= dcMin*d.plan.tw && c.Dy() >= dcMin*d.plan.th {
		img, err := jpegdc.Decode(bytes.NewReader(data))
		switch {
		case err == nil && img.Bounds() == image.Rect(0, 0, (cfg.Width+7)/8, (cfg.Height+7)/8):
			d.img = img
			d.plan.crop = image.Rect((c.Min.X+4)/8, (c.Min.Y+4)/8, (c.Max.X+4)/8, (c.Max.Y+4)/8)
			return d, nil
		case err == nil || err == jpegdc.ErrUnsupported:
			// Decode in full below.
		default:
			return decoded{}, fmt.Errorf("%w: jpeg: %v", ErrCorruptImage, err)
		}
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
