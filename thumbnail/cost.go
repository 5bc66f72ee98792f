package thumbnail

import (
	"bytes"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// maxProbeBytes is how much of a source is read, before the render waits
// for a slot, to find its header. Headers past it (a JPEG with more
// metadata than this before its frame header) make the render heavy.
const maxProbeBytes = 256 << 10

// probe reads the start of a source until its header tells what decoding
// it will cost (see renderCost), and returns the bytes read and that cost.
// maxCost is the cost given to a header that cannot be read: unknown work
// is heavy work.
func probe(r io.Reader, sizeHint int64, sp Spec, maxCost int64) ([]byte, int64, error) {
	n := maxProbeBytes
	if sizeHint >= 0 && sizeHint < maxProbeBytes {
		n = int(sizeHint) + 1
	}
	buf := make([]byte, 0, n)
	for {
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		eof := err == io.EOF
		if err != nil && !eof {
			return buf, 0, err
		}
		cost, known := renderCost(buf, eof, sp, maxCost)
		if known || eof || len(buf) == cap(buf) {
			return buf, cost, nil
		}
	}
}

// renderCost estimates from the header in b how many pixels decoding the
// image for sp touches: the declared size, divided for JPEG by the square
// of the largest DCT scale (1/2, 1/4, 1/8) that still leaves the
// thumbnail's longer requested side on the image's shorter side. Bytes that
// are no image cost nothing (the decoder refuses them at once); a header
// that is malformed costs maxCost. known is false while b may still be too
// short to tell.
func renderCost(b []byte, complete bool, sp Spec, maxCost int64) (cost int64, known bool) {
	var cfg image.Config
	var err error
	format := sniff(b)
	switch format {
	case "jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	case "png":
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	case "gif":
		cfg, err = gif.DecodeConfig(bytes.NewReader(b))
	case "webp":
		cfg, err = webp.DecodeConfig(bytes.NewReader(b))
	default:
		if len(b) < 12 && !complete {
			return 0, false
		}
		return 0, true
	}
	if err != nil {
		if !complete { // perhaps only cut short: read on
			return 0, false
		}
		return maxCost, true
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return maxCost, true
	}
	w, h := int64(cfg.Width), int64(cfg.Height)
	if format == "jpeg" {
		need := int64(max(sp.Width, sp.Height))
		for _, s := range []int64{8, 4, 2} {
			if min(w, h)/s >= need {
				return w * h / (s * s), true
			}
		}
	}
	return w * h, true
}
