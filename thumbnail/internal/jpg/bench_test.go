package jpg

import (
	"context"
	"os"
	"testing"
)

// BenchmarkDecode decodes large JPEGs named by JPG_BENCH_DIR (p12.420.jpg,
// p12.444.jpg, p12.prog.jpg, p12.cmyk.jpg; bench/thumbnail makes them) at
// each scale. It is skipped when they are absent.
func BenchmarkDecode(b *testing.B) {
	dir := os.Getenv("JPG_BENCH_DIR")
	if dir == "" {
		b.Skip("JPG_BENCH_DIR not set")
	}
	for _, name := range []string{"p12.420.jpg", "p12.444.jpg", "p12.prog.jpg", "p12.cmyk.jpg"} {
		data, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			b.Skip(err)
		}
		for _, s := range []int{8, 4, 2, 1} {
			b.Run(name+"/1:"+string(rune('0'+s)), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := Decode(context.Background(), data, Options{Scale: s}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkScanBomb times the refusal of the 3,000-scan file.
func BenchmarkScanBomb(b *testing.B) {
	data := bomb(b, 3000, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(context.Background(), data, Options{Scale: 8}); err == nil {
			b.Fatal("bomb decoded")
		}
	}
}
