package coherent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The payload of one notification is text (PostgreSQL requires valid text in
// the server encoding, without NUL bytes), shorter than 8000 bytes:
//
//	c1 POSITION
//	OP CACHE ARG
//	...
//
// POSITION is "TTTTTTTT X/Y" (the timeline in the eight hex digits that
// start a WAL file name, and the LSN as PostgreSQL prints it) when the
// sender read it after the write committed, or "-" when the notification
// was sent inside the writing transaction and the receiver must find the
// position itself. Each following line is one invalidation: OP is k (a key
// of a typed cache), u (a URL of a response cache), t (a tag), a (all of a
// cache) or h (a heartbeat: CACHE is the sending bus, ARG its counter).
// CACHE and ARG are percent-encoded: every byte that is not printable ASCII
// other than a space or '%' becomes %XX, so a line holds no space or newline
// of its own and any byte string survives the trip. A payload sent by
// [Bus.Send] starts with a line "o BUS s" naming the sending bus, which
// applied the items itself before Send returned and skips them when its
// own notification comes back.
const (
	version = "c1"
	// maxPayload is the longest payload pg_notify accepts (shorter than
	// 8000 bytes).
	maxPayload = 7999
	// maxHeader bounds the header the sender's SQL writes in front of the
	// item lines: "c1 " + 8 hex digits + " " + an LSN of at most 17 bytes.
	maxHeader = len(version) + 1 + 8 + 1 + 17
	// maxOrigin bounds the origin line: "\no " + a bus id (12 hex
	// digits) + " s".
	maxOrigin = 3 + 12 + 2
	// maxBody is what item lines may take in one payload.
	maxBody = maxPayload - maxHeader - maxOrigin
)

// Item is one invalidation: a key of a [Cache], a URL or tag of [Pages], or
// everything in either. Make Items with [Cache.Key], [Cache.All],
// [Pages.URL], [Pages.Tag] and [Pages.All], and send them with [Bus.Send]
// or [Bus.SendTx].
type Item struct {
	op    byte
	cache string
	arg   string
}

func (it Item) String() string {
	return fmt.Sprintf("%c %s %s", it.op, escape(it.cache), escape(it.arg))
}

// message is a decoded payload.
type message struct {
	pos      Position
	resolved bool   // pos was read by the sender after the write committed
	origin   string // the sending bus, for payloads from Bus.Send
	items    []Item
}

var errPayload = errors.New("coherent: malformed notification payload")

// bodies encodes items into item-line blocks ("\nOP CACHE ARG..."), each at
// most maxBody bytes, so that each fits one notification with its header.
// An item too long to fit a notification on its own becomes "all of its
// cache": flushing more than asked is safe, dropping it would not be.
func bodies(items []Item) []string {
	var out []string
	var b strings.Builder
	for _, it := range items {
		line := "\n" + it.String()
		if len(line) > maxBody {
			line = "\n" + Item{op: 'a', cache: it.cache}.String()
		}
		if b.Len()+len(line) > maxBody {
			out = append(out, b.String())
			b.Reset()
		}
		b.WriteString(line)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// header returns the header of a payload sent with a known position.
func header(p Position) string {
	return fmt.Sprintf("%s %08X %X/%X", version, p.Timeline, p.Offset>>32, uint32(p.Offset))
}

// decode parses a payload.
func decode(payload string) (message, error) {
	var m message
	head, rest, more := strings.Cut(payload, "\n")
	f := strings.Split(head, " ")
	switch {
	case len(f) == 2 && f[0] == version && f[1] == "-":
	case len(f) == 3 && f[0] == version:
		tli, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil || len(f[1]) != 8 {
			return m, errPayload
		}
		off, err := parseLSN(f[2])
		if err != nil {
			return m, errPayload
		}
		m.pos, m.resolved = Position{Timeline: uint32(tli), Offset: off}, true
	default:
		return m, errPayload
	}
	if !more {
		return m, nil
	}
	for line := range strings.SplitSeq(rest, "\n") {
		f := strings.Split(line, " ")
		if len(f) != 3 || len(f[0]) != 1 || !strings.ContainsRune("kutaho", rune(f[0][0])) {
			return m, errPayload
		}
		cache, err1 := unescape(f[1])
		arg, err2 := unescape(f[2])
		if err1 != nil || err2 != nil || cache == "" {
			return m, errPayload
		}
		if f[0][0] == 'o' {
			m.origin = cache
			continue
		}
		m.items = append(m.items, Item{op: f[0][0], cache: cache, arg: arg})
	}
	return m, nil
}

// parseLSN parses an LSN as PostgreSQL prints it: two hexadecimal numbers
// of one to eight digits around a slash.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || len(hi) == 0 || len(hi) > 8 || len(lo) == 0 || len(lo) > 8 {
		return 0, errPayload
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, errPayload
	}
	return h<<32 | l, nil
}

const hexDigits = "0123456789ABCDEF"

func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c >= 0x7f {
				return "", errPayload
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+3 > len(s) {
				return "", errPayload
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errPayload
			}
			b = append(b, byte(v))
			i += 2
		case c <= ' ' || c >= 0x7f:
			return "", errPayload
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}
