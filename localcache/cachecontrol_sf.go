package localcache

import (
	"strings"
	"time"
)

// parseTargeted parses a targeted cache-control field such as
// CDN-Cache-Control (RFC 9213): a Structured Field Dictionary (RFC 9651)
// whose members are cache directives. ok is false when the field is absent
// or invalid; then, as RFC 9213 §2.1 says, Cache-Control applies instead.
// Directives with a value of the wrong type are treated as for
// Cache-Control: a freshness lifetime of the wrong type makes the response
// stale, other wrong values are ignored.
func parseTargeted(lines []string) (d directives, ok bool) {
	if len(lines) == 0 {
		return d, false
	}
	members, ok := parseDictionary(strings.Join(lines, ","))
	if !ok || len(members) == 0 {
		return d, false
	}
	d = newDirectives()
	for _, m := range members {
		switch m.key {
		case "no-store":
			d.noStore = true
		case "no-cache":
			d.noCache = true // the qualified form is read as the unqualified one
		case "private":
			d.private = true
		case "public":
			d.public = true
		case "must-revalidate":
			d.mustRevalidate = true
		case "proxy-revalidate":
			d.proxyRevalidate = true
		case "must-understand":
			d.mustUnderstand = true
		case "immutable":
			d.immutable = true
		case "max-age", "s-maxage":
			v := time.Duration(0) // wrong type or negative: stale
			if m.isInt && m.n >= 0 {
				v = min(time.Duration(m.n)*time.Second, maxDelta)
			}
			p := &d.maxAge
			if m.key == "s-maxage" {
				p = &d.sMaxAge
			}
			if *p == absent {
				*p = v
			}
		case "stale-while-revalidate", "stale-if-error":
			if m.isInt && m.n >= 0 {
				v := min(time.Duration(m.n)*time.Second, maxDelta)
				if m.key == "stale-if-error" {
					d.staleIf = v
				} else {
					d.staleWhile = v
				}
			}
		}
	}
	return d, true
}

// member is one Dictionary member as the cache needs it: its key and, if
// its value is an Integer, that integer. Later members with the same key
// replace earlier ones, as RFC 9651 §4.2.2 says.
type member struct {
	key   string
	isInt bool
	n     int64
}

// parseDictionary parses an RFC 9651 Dictionary. It validates every item
// (integers, decimals, strings, tokens, byte sequences, booleans, dates,
// display strings, inner lists and parameters) but keeps only what
// [member] holds.
func parseDictionary(s string) ([]member, bool) {
	p := sfParser{s: strings.Trim(s, " \t")}
	var out []member
	for p.s != "" {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		m := member{key: key}
		if p.eat('=') {
			if strings.HasPrefix(p.s, "(") {
				if !p.innerList() {
					return nil, false
				}
			} else {
				isInt, n, ok := p.bareItem()
				if !ok {
					return nil, false
				}
				m.isInt, m.n = isInt, n
			}
		}
		if !p.params() {
			return nil, false
		}
		replaced := false
		for i := range out {
			if out[i].key == key {
				out[i], replaced = m, true
			}
		}
		if !replaced {
			out = append(out, m)
		}
		p.s = strings.TrimLeft(p.s, " \t")
		if p.s == "" {
			break
		}
		if !p.eat(',') {
			return nil, false
		}
		p.s = strings.TrimLeft(p.s, " \t")
		if p.s == "" {
			return nil, false // trailing comma
		}
	}
	return out, true
}

type sfParser struct{ s string }

func (p *sfParser) eat(c byte) bool {
	if p.s != "" && p.s[0] == c {
		p.s = p.s[1:]
		return true
	}
	return false
}

func (p *sfParser) key() (string, bool) {
	if p.s == "" || !(p.s[0] >= 'a' && p.s[0] <= 'z' || p.s[0] == '*') {
		return "", false
	}
	i := 1
	for i < len(p.s) {
		c := p.s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		i++
	}
	k := p.s[:i]
	p.s = p.s[i:]
	return k, true
}

func (p *sfParser) params() bool {
	for p.eat(';') {
		p.s = strings.TrimLeft(p.s, " ")
		if _, ok := p.key(); !ok {
			return false
		}
		if p.eat('=') {
			if _, _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) innerList() bool {
	p.eat('(')
	for {
		p.s = strings.TrimLeft(p.s, " ")
		if p.eat(')') {
			return p.params()
		}
		if _, _, ok := p.bareItem(); !ok || !p.params() {
			return false
		}
		if p.s == "" || p.s[0] != ' ' && p.s[0] != ')' {
			return false
		}
	}
}

// bareItem parses one bare item, returning the value if it is an Integer.
func (p *sfParser) bareItem() (isInt bool, n int64, ok bool) {
	if p.s == "" {
		return false, 0, false
	}
	c := p.s[0]
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '@': // date
		p.s = p.s[1:]
		isInt, _, ok = p.number()
		return false, 0, ok && isInt
	case c == '"':
		return false, 0, p.str()
	case c == '%' && len(p.s) > 1 && p.s[1] == '"': // display string
		p.s = p.s[1:]
		return false, 0, p.str()
	case c == ':':
		end := strings.IndexByte(p.s[1:], ':')
		if end < 0 {
			return false, 0, false
		}
		for i := 1; i <= end; i++ {
			b := p.s[i]
			if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '/' || b == '=') {
				return false, 0, false
			}
		}
		p.s = p.s[end+2:]
		return false, 0, true
	case c == '?':
		if len(p.s) < 2 || p.s[1] != '0' && p.s[1] != '1' {
			return false, 0, false
		}
		p.s = p.s[2:]
		return false, 0, true
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '*':
		i := 1
		for i < len(p.s) && (isTchar(p.s[i]) || p.s[i] == ':' || p.s[i] == '/') {
			i++
		}
		p.s = p.s[i:]
		return false, 0, true
	}
	return false, 0, false
}

func (p *sfParser) number() (isInt bool, n int64, ok bool) {
	neg := p.eat('-')
	digits, frac, dot := 0, 0, false
	for p.s != "" {
		c := p.s[0]
		if c == '.' && !dot && digits > 0 {
			dot = true
		} else if c >= '0' && c <= '9' {
			if dot {
				frac++
			} else {
				digits++
				n = n*10 + int64(c-'0')
			}
		} else {
			break
		}
		p.s = p.s[1:]
	}
	switch {
	case digits == 0,
		!dot && digits > 15,
		dot && (digits > 12 || frac == 0 || frac > 3):
		return false, 0, false
	}
	if neg {
		n = -n
	}
	return !dot, n, true
}

func (p *sfParser) str() bool {
	for i := 1; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '\\':
			i++
			if i == len(p.s) || p.s[i] != '"' && p.s[i] != '\\' {
				return false
			}
		case c == '"':
			p.s = p.s[i+1:]
			return true
		case c < 0x20 || c > 0x7e:
			return false
		}
	}
	return false
}

func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
