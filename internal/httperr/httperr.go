// Package httperr holds the toolkit's default ErrorHandler: every package's
// ErrorHandler field has the signature
//
//	func(w http.ResponseWriter, r *http.Request, err error)
//
// and, when left nil, falls back to [Default], which logs through log/slog
// and replies with the error's status.
package httperr

import (
	"errors"
	"log/slog"
	"net/http"
)

// StatusError carries the HTTP status a request failure should get.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// WithStatus wraps err so that [Status] reports status.
func WithStatus(status int, err error) error { return &StatusError{Status: status, Err: err} }

// Status returns the status carried by err (see [WithStatus]), or 500.
func Status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return http.StatusInternalServerError
}

// Default logs err with the request's method and path through
// slog.Default (at Error level for 5xx, Warn otherwise) and, if w is not
// nil, replies with the error's status and its status text (never the
// error's own text: it may name internal hosts or paths).
func Default(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	slog.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	if w != nil {
		http.Error(w, http.StatusText(status), status)
	}
}

// Handle calls h, or [Default] when h is nil.
func Handle(h func(http.ResponseWriter, *http.Request, error), w http.ResponseWriter, r *http.Request, err error) {
	if h == nil {
		h = Default
	}
	h(w, r, err)
}
