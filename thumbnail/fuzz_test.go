package thumbnail

import (
	"bytes"
	"errors"
	"image"
	"os"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through the whole render path (sniff,
// header check, decode, resize, encode) with small limits. It must never
// panic, and every failure must be one of the client-error classes.
func FuzzDecode(f *testing.F) {
	photoJPEG := encodeJPEG(f, photo(48, 32), 80)
	for _, b := range [][]byte{
		photoJPEG,
		withEXIF(photoJPEG, 8),
		photoJPEG[:len(photoJPEG)/2],
		alphaPNG(f, 20, 10),
		animatedGIF(f, 12, 8, 2),
		bombPNG(50000, 50000),
		[]byte(htmlPage),
		[]byte(svgImage),
		[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "),
		[]byte("GIF89a\x01\x00\x01\x00\x80\x00\x00"),
		{0xFF, 0xD8, 0xFF},
	} {
		f.Add(b)
	}
	if b, err := os.ReadFile("testdata/lossy.webp"); err == nil {
		f.Add(b)
	}
	specs := []Spec{{Width: 2, Height: 2}, {Width: 16, Height: 16}, {Width: 16, Height: 8, Mode: Fill}, {Height: 20, Upscale: true, Format: PNG}}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, sp := range specs {
			out, ct, err := renderBytes(data, sp, 1<<20, 256)
			if err != nil {
				if !errors.Is(err, ErrCorruptImage) && !errors.Is(err, ErrUnsupportedFormat) &&
					!errors.Is(err, ErrSourceTooLarge) && !errors.Is(err, ErrOutputTooLarge) {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if ct != "image/jpeg" && ct != "image/png" {
				t.Fatalf("content type %q", ct)
			}
			m, _, err := image.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("output does not decode: %v", err)
			}
			if b := m.Bounds(); b.Dx() > 256 || b.Dy() > 256 || b.Empty() {
				t.Fatalf("output size %v", b)
			}
		}
	})
}
