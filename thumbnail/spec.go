package thumbnail

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode says how a thumbnail is fitted to its box.
type Mode int

const (
	// Fit scales the image to fit inside the box, keeping its aspect ratio.
	// It is the default.
	Fit Mode = iota
	// Fill scales the image to cover the box and crops the overflow around
	// the centre. It needs both a width and a height.
	Fill
)

// Format is an output image format.
type Format string

const (
	// Auto keeps the source's format: JPEG stays JPEG, PNG stays PNG, a GIF
	// becomes a PNG of its first frame, and a WebP becomes a JPEG (or a PNG
	// when it has transparency). When Options.WebP is set, Auto is
	// negotiated instead: WebP for requests whose Accept header lists
	// image/webp, the source's format otherwise, with Vary: Accept.
	Auto Format = ""
	// JPEG is baseline JPEG output.
	JPEG Format = "jpeg"
	// PNG is PNG output.
	PNG Format = "png"
	// WebP is WebP output, encoded by Options.WebP; without it the handler
	// answers 400 (this package has no WebP encoder of its own).
	WebP Format = "webp"
)

// DefaultQuality is the JPEG (and WebP) quality used when a Spec gives none.
const DefaultQuality = 82

// Spec describes one thumbnail. Its zero value is not valid: at least one of
// Width and Height must be set.
//
// In a URL a Spec is written as comma-separated options in any order:
// "200x150" (fit inside 200×150), "200x" or "x150" (one side),
// "fill" (cover and crop), "q1".."q100" (JPEG or WebP quality), "jpeg", "png" or
// "webp" (output format), and "up" (allow upscaling). [Spec.String] gives the
// canonical form, which is what URLs are signed over.
type Spec struct {
	Width   int    // Width in pixels; 0 means "from the height and aspect ratio".
	Height  int    // Height in pixels; 0 means "from the width and aspect ratio".
	Mode    Mode   // Fit (default) or Fill.
	Quality int    // JPEG or WebP quality 1–100; 0 means DefaultQuality (82).
	Format  Format // Output format; Auto (empty) keeps the source's format.
	Upscale bool   // Upscale allows output larger than the source.
}

// ErrBadSpec is wrapped by every spec parsing error.
var ErrBadSpec = errors.New("thumbnail: bad spec")

// maxSpecLen bounds the spec segment; real specs are under 30 bytes.
const maxSpecLen = 64

// ParseSpec parses a spec in URL form such as "200x150,fill,q90". Options
// may come in any order; each may appear once. It checks syntax only, not
// the handler's MaxDimension. Errors wrap [ErrBadSpec].
func ParseSpec(s string) (Spec, error) {
	var sp Spec
	if s == "" {
		return sp, fmt.Errorf("%w: empty", ErrBadSpec)
	}
	if len(s) > maxSpecLen {
		return sp, fmt.Errorf("%w: longer than %d bytes", ErrBadSpec, maxSpecLen)
	}
	var seenSize, seenMode, seenQ, seenFmt bool
	for opt := range strings.SplitSeq(s, ",") {
		dup := false
		switch {
		case opt == "fit" || opt == "fill":
			dup, seenMode = seenMode, true
			if opt == "fill" {
				sp.Mode = Fill
			}
		case opt == "up":
			dup, sp.Upscale = sp.Upscale, true
		case opt == "jpeg" || opt == "jpg" || opt == "png" || opt == "webp":
			dup, seenFmt = seenFmt, true
			sp.Format = Format(opt)
			if opt == "jpg" {
				sp.Format = JPEG
			}
		case len(opt) > 1 && opt[0] == 'q' && isDigits(opt[1:]):
			dup, seenQ = seenQ, true
			q, err := atoiSmall(opt[1:])
			if err != nil || q < 1 || q > 100 {
				return Spec{}, fmt.Errorf("%w: quality %q must be q1 to q100", ErrBadSpec, opt)
			}
			sp.Quality = q
		case strings.Contains(opt, "x"):
			dup, seenSize = seenSize, true
			ws, hs, _ := strings.Cut(opt, "x")
			if (ws != "" && !isDigits(ws)) || (hs != "" && !isDigits(hs)) || (ws == "" && hs == "") {
				return Spec{}, fmt.Errorf("%w: size %q must look like 200x150, 200x or x150", ErrBadSpec, opt)
			}
			var err error
			if ws != "" {
				if sp.Width, err = atoiSmall(ws); err != nil || sp.Width == 0 {
					return Spec{}, fmt.Errorf("%w: width in %q must be 1 or more", ErrBadSpec, opt)
				}
			}
			if hs != "" {
				if sp.Height, err = atoiSmall(hs); err != nil || sp.Height == 0 {
					return Spec{}, fmt.Errorf("%w: height in %q must be 1 or more", ErrBadSpec, opt)
				}
			}
		default:
			return Spec{}, fmt.Errorf("%w: unknown option %q", ErrBadSpec, opt)
		}
		if dup {
			return Spec{}, fmt.Errorf("%w: option %q repeats or conflicts with an earlier one", ErrBadSpec, opt)
		}
	}
	if !seenSize {
		return Spec{}, fmt.Errorf("%w: no size (like 200x150, 200x or x150)", ErrBadSpec)
	}
	if sp.Quality == DefaultQuality {
		sp.Quality = 0
	}
	if err := sp.check(); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

// check reports the errors a well-formed Spec can still have.
func (sp Spec) check() error {
	switch {
	case sp.Width < 0 || sp.Height < 0 || (sp.Width == 0 && sp.Height == 0):
		return fmt.Errorf("%w: no size", ErrBadSpec)
	case sp.Mode == Fill && (sp.Width == 0 || sp.Height == 0):
		return fmt.Errorf("%w: fill needs both a width and a height", ErrBadSpec)
	case sp.Mode != Fit && sp.Mode != Fill:
		return fmt.Errorf("%w: unknown mode %d", ErrBadSpec, sp.Mode)
	case sp.Quality < 0 || sp.Quality > 100:
		return fmt.Errorf("%w: quality %d must be 1 to 100", ErrBadSpec, sp.Quality)
	}
	switch sp.Format {
	case Auto, JPEG, PNG, WebP:
	default:
		return fmt.Errorf("%w: unknown format %q", ErrBadSpec, string(sp.Format))
	}
	return nil
}

// String returns the canonical URL form of sp: size first, then "fill",
// "q<n>", the format and "up", with defaults (fit, q82, source format)
// left out. Equal thumbnails have equal strings.
func (sp Spec) String() string {
	b := make([]byte, 0, 32)
	if sp.Width > 0 {
		b = strconv.AppendInt(b, int64(sp.Width), 10)
	}
	b = append(b, 'x')
	if sp.Height > 0 {
		b = strconv.AppendInt(b, int64(sp.Height), 10)
	}
	if sp.Mode == Fill {
		b = append(b, ",fill"...)
	}
	if sp.Quality != 0 && sp.Quality != DefaultQuality {
		b = append(b, ",q"...)
		b = strconv.AppendInt(b, int64(sp.Quality), 10)
	}
	if sp.Format != Auto {
		b = append(b, ',')
		b = append(b, sp.Format...)
	}
	if sp.Upscale {
		b = append(b, ",up"...)
	}
	return string(b)
}

func (sp Spec) quality() int {
	if sp.Quality == 0 {
		return DefaultQuality
	}
	return sp.Quality
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoiSmall parses up to 6 decimal digits (larger sizes are never valid and
// would only risk overflow further on).
func atoiSmall(s string) (int, error) {
	if len(s) > 6 {
		return 0, errors.New("too large")
	}
	return strconv.Atoi(s)
}

// validPresetName reports whether name can name a preset: lower-case
// letters, digits, '-' and '_', starting with a letter, and not itself a
// valid spec (so a preset never shadows one).
func validPresetName(name string) bool {
	if name == "" || len(name) > 32 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	_, err := ParseSpec(name)
	return err != nil
}
