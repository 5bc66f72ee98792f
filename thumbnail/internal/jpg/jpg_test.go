package jpg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMatchesLibjpeg compares the full-scale RGB (or gray) output with
// libjpeg-turbo's djpeg (integer IDCT, fancy upsampling), stored next to
// each fixture. libjpeg-turbo upsamples 2×1 and 2×2 chroma with the same
// triangle filter, so those agree closely; other factors it upsamples by
// repetition, so they get a looser bound.
func TestMatchesLibjpeg(t *testing.T) {
	refs, _ := filepath.Glob("testdata/*.djpeg.png")
	if len(refs) == 0 {
		t.Fatal("no reference images")
	}
	for _, ref := range refs {
		name := strings.TrimSuffix(filepath.Base(ref), ".djpeg.png")
		t.Run(name, func(t *testing.T) {
			want, err := png.Decode(bytes.NewReader(mustRead(t, ref)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(context.Background(), mustRead(t, "testdata/"+name+".jpg"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds() != want.Bounds() {
				t.Fatalf("bounds: got %v, want %v", got.Bounds(), want.Bounds())
			}
			if strings.Contains(name, "gray") {
				if _, ok := got.(*image.Gray); !ok {
					t.Errorf("gray JPEG decoded to %T, want *image.Gray", got)
				}
			}
			maxd, mean := diffRGB(want, got)
			wantMax, wantMean := 4, 0.6
			if strings.Contains(name, "32") || strings.Contains(name, "440") || strings.Contains(name, "mixed") {
				wantMax, wantMean = 64, 3 // libjpeg repeats samples for these factors; we interpolate
			}
			if maxd > wantMax || mean > wantMean {
				t.Errorf("against djpeg: max difference %d (want <= %d), mean %.3f (want <= %.1f)", maxd, wantMax, mean, wantMean)
			}
		})
	}
}

func diffRGB(a, b image.Image) (int, float64) {
	r := a.Bounds()
	var maxd, sum, n int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ca := color.NRGBAModel.Convert(a.At(x, y)).(color.NRGBA)
			cb := color.NRGBAModel.Convert(b.At(x, y)).(color.NRGBA)
			for _, p := range [][2]uint8{{ca.R, cb.R}, {ca.G, cb.G}, {ca.B, cb.B}} {
				d := max(int(p[0])-int(p[1]), int(p[1])-int(p[0]))
				maxd = max(maxd, d)
				sum += d
				n++
			}
		}
	}
	return maxd, float64(sum) / float64(n)
}

// TestScaledMatchesBoxAverage checks each reduced scale against the full
// decode averaged over the same blocks: at 1/8 the DC term is the block
// mean, at 1/4 and 1/2 the reduced inverse DCT is close to it.
func TestScaledMatchesBoxAverage(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.jpg")
	for _, f := range files {
		data := mustRead(t, f)
		full, err := Decode(context.Background(), data, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []int{2, 4, 8} {
			t.Run(filepath.Base(f)+"/"+string(rune('0'+s)), func(t *testing.T) {
				got, err := Decode(context.Background(), data, Options{Scale: s})
				if err != nil {
					t.Fatal(err)
				}
				fb := full.Bounds()
				if want := image.Rect(0, 0, (fb.Dx()+s-1)/s, (fb.Dy()+s-1)/s); got.Bounds() != want {
					t.Fatalf("bounds: got %v, want %v", got.Bounds(), want)
				}
				// Compare luma-ish brightness of interior pixels only: the
				// last partial block averages encoder padding.
				var sum float64
				var n int
				for y := 0; y < fb.Dy()/s; y++ {
					for x := 0; x < fb.Dx()/s; x++ {
						var acc float64
						for yy := 0; yy < s; yy++ {
							for xx := 0; xx < s; xx++ {
								acc += gray(full.At(x*s+xx, y*s+yy))
							}
						}
						d := acc/float64(s*s) - gray(got.At(x, y))
						sum += max(d, -d)
						n++
					}
				}
				if mean := sum / float64(n); mean > 4 {
					t.Errorf("mean brightness difference from the box average %.2f, want <= 4", mean)
				}
			})
		}
	}
}

func gray(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}

// TestColorSpaces checks that the colour of each fixture comes out right
// at full scale: the CMYK fixtures against the same picture's RGB JPEG.
func TestColorSpaces(t *testing.T) {
	rgb, err := Decode(context.Background(), mustRead(t, "testdata/odd.444.progressive.jpg"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"odd.cmyk.jpg", "odd.cmyk.progressive.jpg"} {
		data := mustRead(t, "testdata/"+name)
		cfg, err := DecodeConfig(data)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ColorSpace != YCCK { // ImageMagick writes Adobe YCCK
			t.Errorf("%s: colour space %v, want ycck", name, cfg.ColorSpace)
		}
		got, err := Decode(context.Background(), data, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// ImageMagick's naive RGB→CMYK, undone naively: close to the source.
		if maxd, mean := diffRGB(rgb, got); mean > 4 {
			t.Errorf("%s: against the RGB fixture: max %d, mean %.2f", name, maxd, mean)
		}
	}
}

// segments splits a JPEG into its marker segments and entropy-coded data,
// for building hostile files.
func segments(t testing.TB, data []byte) (head []byte, scans [][]byte) {
	t.Helper()
	p := 2
	for p < len(data) {
		m := data[p+1]
		if m == 0xD9 {
			break
		}
		l := int(binary.BigEndian.Uint16(data[p+2:]))
		end := p + 2 + l
		if m == 0xDA {
			end = scanEnd(data, end)
			scans = append(scans, data[p:end])
		} else if len(scans) == 0 {
			head = data[:end]
		} else {
			scans = append(scans, data[p:end])
		}
		p = end
	}
	return head, scans
}

// bomb is a progressive JPEG declaring width×height with one AC scan
// repeated n times.
func bomb(t testing.TB, n int, refinement bool) []byte {
	data := mustRead(t, "testdata/odd.444.progressive.jpg")
	head, scans := segments(t, data)
	var out bytes.Buffer
	out.Write(head)
	for _, s := range scans {
		out.Write(s)
	}
	// Pick the last scan of the wanted kind and repeat it.
	var rep []byte
	for _, s := range scans {
		if s[1] != 0xDA {
			continue
		}
		ns := int(s[4])
		q := s[5+2*ns:]
		if q[0] > 0 && (q[2]>>4 != 0) == refinement {
			rep = s
		}
	}
	if rep == nil {
		t.Fatal("no scan to repeat")
	}
	for range n {
		out.Write(rep)
	}
	out.WriteString("\xFF\xD9")
	return out.Bytes()
}

// TestScanBombRefused: repeats of one scan are refused while the headers
// are read, before any scan is decoded, at every scale: 3,000 repeats by
// the scan cap, 200 (under the cap) by the progression check, since a
// repeated scan would send the same coefficient bits twice. The check
// counts decoded scans, not time (BenchmarkScanBomb measures the time).
func TestScanBombRefused(t *testing.T) {
	for _, tt := range []struct {
		n          int
		refinement bool
	}{{3000, false}, {3000, true}, {200, false}, {200, true}} {
		refinement := tt.refinement
		data := bomb(t, tt.n, refinement)
		for _, s := range []int{1, 8} {
			d := decoder{ctx: context.Background(), scale: s}
			err := d.parse(data, false)
			if err == nil {
				err = d.decode()
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooComplex) {
				t.Fatalf("%d repeats, refinement=%v, scale 1/%d: got %v, want a refusal", tt.n, refinement, s, err)
			}
			if d.decoded != 0 {
				t.Errorf("%d repeats, refinement=%v, scale 1/%d: %d scans decoded before the refusal, want 0", tt.n, refinement, s, d.decoded)
			}
		}
	}
}

// TestScanCap: a file with more scans than maxScans is refused while the
// headers are read, even when every scan is valid on its own: here each
// AC coefficient of the first component is sent alone, 13 bits down to
// 12, then refined bit by bit.
func TestScanCap(t *testing.T) {
	data := mustRead(t, "testdata/odd.444.progressive.jpg")
	head, _ := segments(t, data)
	id := head[bytes.Index(head, []byte{0xFF, 0xC2})+10] // first component's id
	var out bytes.Buffer
	out.Write(head)
	n := 0
	for al := 13; al >= 0 && n <= maxScans; al-- {
		for k := 1; k <= 63 && n <= maxScans; k++ {
			ah := al + 1
			if al == 13 {
				ah = 0
			}
			out.Write([]byte{0xFF, 0xDA, 0, 8, 1, id, 0, byte(k), byte(k), byte(ah<<4 | al), 0})
			n++
		}
	}
	out.WriteString("\xFF\xD9")
	d := decoder{ctx: context.Background(), scale: 8}
	if err := d.parse(out.Bytes(), false); !errors.Is(err, ErrTooComplex) {
		t.Fatalf("%d valid scans: got %v, want ErrTooComplex", n, err)
	}
}

// TestWorkLimit: scans that are each valid but together visit far more
// blocks than the frame has are refused once the budget is spent. With
// the limit disabled the same file decodes.
func TestWorkLimit(t *testing.T) {
	data := mustRead(t, "testdata/odd.444.progressive.jpg")
	d := decoder{ctx: context.Background(), scale: 1}
	if err := d.parse(data, false); err != nil {
		t.Fatal(err)
	}
	d.workLimit = d.work + 10 // far less than one scan
	if err := d.decode(); !errors.Is(err, ErrTooComplex) {
		t.Fatalf("got %v, want ErrTooComplex", err)
	}
}

func TestTruncated(t *testing.T) {
	for _, name := range []string{"odd.422.rst2.jpg", "odd.420.progressive.rst1.jpg", "odd.444.progressive.jpg"} {
		data := mustRead(t, "testdata/"+name)
		for _, cut := range []int{len(data) * 3 / 4, len(data) / 2, 700} {
			m, err := Decode(context.Background(), data[:cut], Options{})
			if err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) {
				t.Errorf("%s cut at %d: got %v", name, cut, err)
			}
			if errors.Is(err, ErrTruncated) && m == nil {
				t.Errorf("%s cut at %d: ErrTruncated without an image", name, cut)
			}
		}
	}
}

func TestUnsupportedAndLimits(t *testing.T) {
	data := mustRead(t, "testdata/odd.422.rst2.jpg")
	sof := bytes.Index(data, []byte{0xFF, 0xC0})
	for _, tt := range []struct {
		name string
		edit func(b []byte)
		want error
	}{
		{"arithmetic", func(b []byte) { b[sof+1] = 0xC9 }, ErrUnsupported},
		{"lossless", func(b []byte) { b[sof+1] = 0xC3 }, ErrUnsupported},
		{"12-bit", func(b []byte) { b[sof+4] = 12 }, ErrUnsupported},
		{"DNL height", func(b []byte) { b[sof+5], b[sof+6] = 0, 0 }, ErrUnsupported},
		{"huge", func(b []byte) { b[sof+5], b[sof+6], b[sof+7], b[sof+8] = 0xFF, 0xFF, 0xFF, 0xFF }, ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(data)
			tt.edit(b)
			_, err := Decode(context.Background(), b, Options{MaxPixels: 50_000_000})
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Decode(ctx, mustRead(t, "testdata/odd.422.rst2.jpg"), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jpg")
	for _, name := range files {
		f.Add(mustRead(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := DecodeConfig(data)
		if err != nil {
			return
		}
		if int64(cfg.Width)*int64(cfg.Height) > 1<<18 {
			return
		}
		for _, s := range []int{1, 8} {
			m, err := Decode(context.Background(), data, Options{Scale: s, MaxPixels: 1 << 18})
			if err != nil && !errors.Is(err, ErrTruncated) {
				continue
			}
			if want := image.Rect(0, 0, (cfg.Width+s-1)/s, (cfg.Height+s-1)/s); m.Bounds() != want {
				t.Fatalf("scale 1/%d: bounds %v, want %v", s, m.Bounds(), want)
			}
		}
	})
}
