package jpg

import "fmt"

func fmtTooComplex(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrTooComplex}, args...)...)
}

func fmtTooLarge(w, h int, limit int64) error {
	return fmt.Errorf("%w: %dx%d is more than %d pixels", ErrTooLarge, w, h, limit)
}
