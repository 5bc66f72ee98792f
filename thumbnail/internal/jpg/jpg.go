package jpg

import (
	"context"
	"errors"
	"fmt"
	"image"
)

// Errors returned by [DecodeConfig] and [Decode]. Other failures wrap
// [ErrFormat].
var (
	// ErrFormat: the data is not a valid JPEG stream.
	ErrFormat = errors.New("jpg: invalid JPEG")
	// ErrUnsupported: a valid JPEG this decoder does not handle
	// (arithmetic coding, 12- or 16-bit samples, lossless, hierarchical,
	// DNL, unusual sampling factors).
	ErrUnsupported = errors.New("jpg: unsupported JPEG")
	// ErrTooLarge: the frame declares more pixels than Options.MaxPixels.
	ErrTooLarge = errors.New("jpg: image too large")
	// ErrTooComplex: the file has more scans, or needs more
	// entropy-decoding work, than its size in blocks justifies.
	ErrTooComplex = errors.New("jpg: too much work for the image size")
	// ErrTruncated is returned together with an image when the entropy
	// data ends early; the missing part of the image is mid-gray (or
	// lacks the missing detail, for a progressive file).
	ErrTruncated = errors.New("jpg: truncated image data")
)

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

// ColorSpace is the colour model of the coded components.
type ColorSpace int

// Colour spaces, from the component count, the JFIF APP0 and Adobe APP14
// markers and the component identifiers.
const (
	Gray ColorSpace = iota
	YCbCr
	RGB
	CMYK // Adobe APP14 transform 0 with four components, or four without APP14
	YCCK // Adobe APP14 transform 2
)

func (c ColorSpace) String() string {
	return [...]string{"gray", "ycbcr", "rgb", "cmyk", "ycck"}[c]
}

// Config describes a JPEG from its headers.
type Config struct {
	Width, Height int
	ColorSpace    ColorSpace
	Progressive   bool
	// Sampling holds each component's horizontal and vertical sampling
	// factors, in frame order.
	Sampling [][2]int
	// ICC is the embedded ICC profile (APP2 chunks joined), or nil.
	ICC []byte
}

// Options control [Decode]. The zero value decodes at full size with no
// pixel limit beyond the format's.
type Options struct {
	// Scale is the denominator of the decode scale: 1, 2, 4 or 8. Zero
	// means 1. The result is ceil(Width/Scale) × ceil(Height/Scale).
	Scale int
	// MaxPixels refuses frames with more than this many pixels (before
	// scaling) with ErrTooLarge, before allocating anything. Zero means
	// no limit beyond 65535×65535.
	MaxPixels int64
}

// Limits on work, whatever the options.
const (
	// maxScans bounds the scans in one file; encoders write at most a few
	// dozen.
	maxScans = 300
	// workPerBlock bounds entropy-decoding work: the blocks visited by all
	// decoded scans together may be at most this many times the blocks
	// in the frame. A progressive file visits each block 2–10 times.
	workPerBlock = 32
)

// DecodeConfig reads the headers of a JPEG up to its first scan.
func DecodeConfig(data []byte) (Config, error) {
	var d decoder
	if err := d.parse(data, true); err != nil {
		return Config{}, err
	}
	return d.config(), nil
}

// Decode decodes data at 1/o.Scale. It checks ctx once per row of blocks
// and returns ctx.Err() when it is done. A truncated file returns the
// image decoded so far together with [ErrTruncated].
func Decode(ctx context.Context, data []byte, o Options) (image.Image, error) {
	switch o.Scale {
	case 0:
		o.Scale = 1
	case 1, 2, 4, 8:
	default:
		return nil, fmt.Errorf("jpg: Decode: Options.Scale %d is not 1, 2, 4 or 8", o.Scale)
	}
	d := decoder{ctx: ctx, scale: o.Scale, maxPixels: o.MaxPixels}
	if err := d.parse(data, false); err != nil {
		return nil, err
	}
	if err := d.decode(); err != nil {
		return nil, err
	}
	img := d.image()
	if d.truncated {
		return img, ErrTruncated
	}
	return img, nil
}
