package thumbnail

import (
	"errors"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in    string
		want  Spec
		canon string
	}{
		{"200x150", Spec{Width: 200, Height: 150}, "200x150"},
		{"200x", Spec{Width: 200}, "200x"},
		{"x150", Spec{Height: 150}, "x150"},
		{"200x150,fill", Spec{Width: 200, Height: 150, Mode: Fill}, "200x150,fill"},
		{"fill,200x150", Spec{Width: 200, Height: 150, Mode: Fill}, "200x150,fill"},
		{"200x150,fit", Spec{Width: 200, Height: 150}, "200x150"},
		{"q90,png,200x150", Spec{Width: 200, Height: 150, Quality: 90, Format: PNG}, "200x150,q90,png"},
		{"200x150,q82", Spec{Width: 200, Height: 150}, "200x150"},
		{"200x150,jpg", Spec{Width: 200, Height: 150, Format: JPEG}, "200x150,jpeg"},
		{"up,webp,q1,0200x0150,fill", Spec{Width: 200, Height: 150, Mode: Fill, Quality: 1, Format: WebP, Upscale: true}, "200x150,fill,q1,webp,up"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.canon {
				t.Errorf("String: got %q, want %q", got.String(), tt.canon)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, in := range []string{
		"", "x", "0x0", "0x10", "10x0", "-1x10", "10x-1", "axb", "10x10x10", "10x10,10x10",
		"10x10,fill,fit", "10x10,q0", "10x10,q101", "10x10,q", "10x10,qq", "10x10,png,jpeg",
		"10x10,gif", "10x10,svg", "10x10,,", ",10x10", "10x10,up,up", "fill", "png", "q50",
		"200x,fill", "x200,fill", "1234567x1", "10x10,FILL", "10 x10", "10x10;fill",
		"10x10,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	} {
		if sp, err := ParseSpec(in); err == nil || !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q) = %+v, %v; want an ErrBadSpec", in, sp, err)
		}
	}
}

// FuzzParseSpec checks that parsing never panics and that the canonical
// form is a fixed point: it parses back to the same Spec and string.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"200x150", "x1", "1x", "200x150,fill,q90,png,up", "q5,jpg,fit,3x4", "10x10,q101", ",", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v does not wrap ErrBadSpec", err)
			}
			return
		}
		canon := sp.String()
		sp2, err := ParseSpec(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, s, err)
		}
		if sp2 != sp || sp2.String() != canon {
			t.Fatalf("%q → %+v → %q → %+v", s, sp, canon, sp2)
		}
	})
}
