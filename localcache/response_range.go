package localcache

import (
	"net/http"
	"strconv"
	"strings"
)

// serveRange answers a request for a single byte range (RFC 9110 §14)
// from a complete stored response: 206 with the part, or 416 if the range
// cannot be satisfied. It returns false, having written nothing, for what
// it does not serve as a part (several ranges, another unit, a malformed
// field): the caller then sends the whole response, which §14.2 allows.
func serveRange(w http.ResponseWriter, r *http.Request, resp *response) bool {
	lines := r.Header["Range"]
	if len(lines) != 1 {
		return false
	}
	spec, ok := strings.CutPrefix(lines[0], "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return false
	}
	size := int64(len(resp.body))
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return false
	}
	var start, end int64
	switch {
	case first == "": // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 || last[0] == '+' {
			return false
		}
		if n == 0 {
			return unsatisfiable(w, r, size)
		}
		start, end = max(0, size-n), size-1
	default:
		s, err := strconv.ParseInt(first, 10, 64)
		if err != nil || s < 0 || first[0] == '+' {
			return false
		}
		start, end = s, size-1
		if last != "" {
			e, err := strconv.ParseInt(last, 10, 64)
			if err != nil || e < s || last[0] == '+' {
				return false
			}
			end = min(e, size-1)
		}
		if start >= size {
			return unsatisfiable(w, r, size)
		}
	}
	h := w.Header()
	h["Content-Range"] = []string{"bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/" + strconv.FormatInt(size, 10)}
	h["Content-Length"] = []string{strconv.FormatInt(end-start+1, 10)}
	w.WriteHeader(http.StatusPartialContent)
	if r.Method != http.MethodHead {
		w.Write(resp.body[start : end+1])
	}
	return true
}

func unsatisfiable(w http.ResponseWriter, r *http.Request, size int64) bool {
	h := w.Header()
	h["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
	delete(h, "Content-Length")
	delete(h, "Etag")
	w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	return true
}
