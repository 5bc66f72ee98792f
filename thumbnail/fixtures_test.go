package thumbnail

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// photo returns a camera-like test picture: smooth gradients, a few hard
// edges and fine texture, so that resampling differences show up in PSNR.
func photo(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	// sin(a+b) and cos(a-b) from per-column and per-row tables keep this
	// cheap under the race detector.
	sx, cx, s2x, c2x := make([]float64, w), make([]float64, w), make([]float64, w), make([]float64, w)
	for x := range w {
		fx := float64(x) / float64(w)
		sx[x], cx[x] = math.Sincos(fx * 7)
		s2x[x], c2x[x] = math.Sincos(fx * 2)
	}
	seed := uint32(12345)
	for y := 0; y < h; y++ {
		fy := float64(y) / float64(h)
		sy, cy := math.Sincos(fy * 3)
		s11, c11 := math.Sincos(fy * 11)
		for x := 0; x < w; x++ {
			v := 90 + 80*(sx[x]*cy+cx[x]*sy) + 40*(c11*c2x[x]+s11*s2x[x])
			if (x/(w/8+1)+y/(h/6+1))%2 == 0 {
				v += 25
			}
			seed = seed*1664525 + 1013904223
			v += float64(seed>>28) - 8 // grain
			m.Y[y*m.YStride+x] = clamp8(v)
		}
	}
	for y := 0; y < (h+1)/2; y++ {
		fy := float64(2*y) / float64(h)
		for x := 0; x < (w+1)/2; x++ {
			m.Cb[y*m.CStride+x] = clamp8(128 + 60*sx[min(2*x, w-1)])
			m.Cr[y*m.CStride+x] = clamp8(128 + 60*math.Cos(fy*5))
		}
	}
	return m
}

func clamp8(v float64) uint8 { return uint8(max(0, min(255, v))) }

func encodeJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withEXIF inserts an APP1 Exif segment with the given orientation, plus a
// fake GPS-looking marker string, right after the JPEG's SOI marker.
func withEXIF(jpg []byte, orientation uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8))
	binary.Write(&tiff, binary.BigEndian, uint16(1)) // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112))
	binary.Write(&tiff, binary.BigEndian, uint16(3))
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, orientation)
	binary.Write(&tiff, binary.BigEndian, uint16(0))
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	tiff.WriteString("GPSLatitude 51.5007N secret-location")
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xFF, 0xE1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// halves returns a w×h image whose left half is red and right half blue.
func halves(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{220, 20, 20, 255}
			if x >= w/2 {
				c = color.RGBA{20, 20, 220, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

// alphaPNG is a PNG whose left half is transparent and right half opaque green.
func alphaPNG(t testing.TB, w, h int) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if x >= w/2 {
				m.SetNRGBA(x, y, color.NRGBA{0, 200, 0, 255})
			} else {
				m.SetNRGBA(x, y, color.NRGBA{255, 0, 255, 0}) // hidden magenta
			}
		}
	}
	return encodePNG(t, m)
}

// animatedGIF has frames frames of w×h, each a different colour.
func animatedGIF(t testing.TB, w, h, frames int) []byte {
	t.Helper()
	g := &gif.GIF{}
	for i := 0; i < frames; i++ {
		m := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		idx := uint8(40 + 30*i)
		for p := range m.Pix {
			m.Pix[p] = idx
		}
		g.Image = append(g.Image, m)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bombPNG is a tiny PNG whose header declares w×h pixels.
func bombPNG(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		out = append(out, typ...)
		out = append(out, data...)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // 8-bit gray
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 1024)) // a little of the (zero) image data
	zw.Close()
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", z.Bytes())...)
	return append(out, chunk("IEND", nil)...)
}

const htmlPage = "<!doctype html><html><body><script>alert(1)</script></body></html>"

const svgImage = `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>`

// fixtureDir writes the test images into a new directory and returns it.
func fixtureDir(t testing.TB) string {
	t.Helper()
	fixturesOnce.Do(func() { fixtureFiles = makeFixtures(t) })
	dir := t.TempDir()
	for name, b := range fixtureFiles {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	fixturesOnce sync.Once
	fixtureFiles map[string][]byte
)

func makeFixtures(t testing.TB) map[string][]byte {
	photoJPEG := encodeJPEG(t, photo(640, 480), 90)
	webpLossy, err := os.ReadFile("testdata/lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpAlpha, err := os.ReadFile("testdata/alpha.webp")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"photo.jpg":           photoJPEG,
		"camera.jpg":          withEXIF(encodeJPEG(t, halves(400, 200), 95), 6),
		"alpha.png":           alphaPNG(t, 200, 100),
		"anim.gif":            animatedGIF(t, 120, 80, 3),
		"lossy.webp":          webpLossy,
		"alpha.webp":          webpAlpha,
		"bomb.png":            bombPNG(50000, 50000),
		"truncated.jpg":       photoJPEG[:len(photoJPEG)/2],
		"html.jpg":            []byte(htmlPage),
		"image.svg":           []byte(svgImage),
		"sub/dir/nested.jpg":  photoJPEG,
		"with space & ü.jpg":  photoJPEG,
		"wide.png":            encodePNG(t, image.NewGray(image.Rect(0, 0, 1000, 10))),
		"corrupt.png":         corruptPNG(t),
		"manyframes.gif":      animatedGIF(t, 100, 100, 60),
		"empty.jpg":           {},
		"inside/.keep":        {},
		"notanimage.txt.jpeg": []byte("just text"),
	}
	return files
}

// corruptPNG is a valid PNG header followed by garbage image data.
func corruptPNG(t testing.TB) []byte {
	b := encodePNG(t, halves(64, 64))
	for i := 60; i < len(b)-20; i++ {
		b[i] ^= 0x5A
	}
	return b
}
