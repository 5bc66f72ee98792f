// Package hook provides the one ResponseWriter wrapper the toolkit's
// middlewares share: it runs a callback exactly once, just before the response
// headers go out, so a middleware can add Set-Cookie or Vary at the last
// moment without buffering the body.
package hook

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// Writer wraps an http.ResponseWriter and calls its before-function exactly
// once, on the first WriteHeader (with a final status), Write, ReadFrom or
// Flush, or from [Writer.Done] if the handler wrote nothing. It does not
// buffer. [Writer.Unwrap] lets [http.ResponseController] reach the writer
// underneath, so deadlines, Flush and Hijack keep working.
//
// A Writer is used by one handler goroutine, like any ResponseWriter.
type Writer struct {
	http.ResponseWriter
	before  func(status int) int
	status  int
	done    bool // headers are out (or the connection was hijacked)
	discard bool
	tee     io.Writer
}

// New returns a Writer around w. before receives the status the handler is
// about to send (200 when it only wrote a body) and returns the status to send
// instead: usually the same one, or e.g. 500 when the middleware's own work
// failed. before may change w's headers. It may be nil.
func New(w http.ResponseWriter, before func(status int) int) *Writer {
	return &Writer{ResponseWriter: w, before: before}
}

// Reset makes w a fresh Writer around rw with before, exactly as [New]
// would return. It lets a middleware embed a Writer by value in its own
// per-request struct and pay one allocation instead of two.
func (w *Writer) Reset(rw http.ResponseWriter, before func(status int) int) {
	*w = Writer{ResponseWriter: rw, before: before}
}

// Unwrap returns the wrapped ResponseWriter, for [http.ResponseController].
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status returns the status code sent, or 0 while headers are not yet out.
func (w *Writer) Status() int { return w.status }

// Written reports whether the response headers have gone out.
func (w *Writer) Written() bool { return w.done }

// DiscardBody makes later body writes succeed without sending anything. A
// before-function that replaced the status with an error calls it so the
// client does not get the handler's body under the error status.
func (w *Writer) DiscardBody() { w.discard = true }

// Tee copies every body byte sent from now on to dst as well (a response
// cache's capture). Errors from dst are ignored; dst decides what to keep.
func (w *Writer) Tee(dst io.Writer) { w.tee = dst }

// WriteHeader runs the hook and sends the header once. Later calls are
// ignored (no "superfluous WriteHeader" log). Informational 1xx statuses other
// than 101 pass straight through and do not run the hook.
func (w *Writer) WriteHeader(code int) {
	if w.done {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.done = true
	if w.before != nil {
		code = w.before(code)
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Write sends the header (status 200) first if needed, then p.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	if w.tee != nil && n > 0 {
		w.tee.Write(p[:n])
	}
	return n, err
}

// ReadFrom sends the header first if needed, then copies from r, using the
// underlying writer's ReadFrom (sendfile) when nothing needs to see the bytes.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return io.Copy(io.Discard, r)
	}
	if w.tee != nil {
		return io.Copy(writerOnly{w}, r)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, r)
}

// Flush sends the header first if needed, then flushes. It makes
// w.(http.Flusher) work; errors are dropped as http.Flusher requires.
func (w *Writer) Flush() { _ = w.FlushError() }

// FlushError is Flush that reports whether the underlying writer could flush;
// [http.ResponseController] prefers it.
func (w *Writer) FlushError() error {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the connection from the underlying writer. The hook does
// not run: a hijacked connection has no HTTP headers to amend.
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.done = true
	}
	return c, rw, err
}

// Done runs the hook and sends the header (status 200) if the handler wrote
// nothing at all. Middlewares call it after the wrapped handler returns.
func (w *Writer) Done() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
}

// writerOnly hides every method but Write, so io.Copy cannot recurse into
// ReadFrom.
type writerOnly struct{ io.Writer }
