package sharednothing

import "github.com/sharednothing/sharednothing/internal/httperr"

// ErrorStatus returns the HTTP status the toolkit answers err with: the
// status a package attached to an error it passes to an ErrorHandler (413
// for a source image too large, 503 when overloaded, and so on), or 500 for
// any other error. A custom ErrorHandler uses it to keep the statuses while
// rendering its own page:
//
//	thumbs.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
//		status := sharednothing.ErrorStatus(err)
//		w.WriteHeader(status)
//		errorPage.Execute(w, http.StatusText(status))
//	}
func ErrorStatus(err error) int { return httperr.Status(err) }
