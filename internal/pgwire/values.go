package pgwire

import (
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type OIDs the driver converts; everything else comes back as text bytes.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
)

func decode(typ uint32, b []byte) (driver.Value, error) {
	if b == nil {
		return nil, nil
	}
	s := string(b)
	switch typ {
	case oidBool:
		return s == "t", nil
	case oidInt2, oidInt4, oidInt8, oidOID:
		return strconv.ParseInt(s, 10, 64)
	case oidFloat4, oidFloat8:
		return strconv.ParseFloat(s, 64)
	case oidBytea:
		if !strings.HasPrefix(s, `\x`) {
			return nil, fmt.Errorf("pgwire: bytea not in hex format")
		}
		return hex.DecodeString(s[2:])
	case oidTimestamptz:
		return parseTime(s, true)
	case oidTimestamp:
		return parseTime(s, false)
	case oidDate:
		return time.Parse("2006-01-02", s)
	}
	return append([]byte(nil), b...), nil
}

func parseTime(s string, zone bool) (time.Time, error) {
	layout := "2006-01-02 15:04:05.999999999"
	if zone {
		// The server prints the offset as +HH, +HH:MM or +HH:MM:SS.
		for _, z := range []string{"Z07:00:00", "Z07:00", "Z07"} {
			if t, err := time.Parse(layout+z, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("pgwire: bad timestamptz %q", s)
	}
	return time.Parse(layout, s)
}

// bind replaces $1, $2, … outside quoted text with the arguments as SQL
// literals.
func bind(query string, args []driver.NamedValue) (string, error) {
	if len(args) == 0 {
		return query, nil
	}
	var b strings.Builder
	used := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case ch == '\'' || ch == '"':
			j := i + 1
			for j < len(query) && query[j] != ch {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case ch == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(query[i+1 : j])
			if n < 1 || n > len(args) {
				return "", fmt.Errorf("pgwire: query uses $%d but has %d arguments", n, len(args))
			}
			lit, err := literal(args[n-1].Value)
			if err != nil {
				return "", err
			}
			b.WriteString(lit)
			used = max(used, n)
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	if used != len(args) {
		return "", fmt.Errorf("pgwire: %d arguments given, query uses %d", len(args), used)
	}
	return b.String(), nil
}

func literal(v driver.Value) (string, error) {
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "'" + strconv.FormatFloat(v, 'g', -1, 64) + "'::float8", nil
		}
		return strconv.FormatFloat(v, 'g', -1, 64) + "::float8", nil
	case bool:
		if v {
			return "TRUE", nil
		}
		return "FALSE", nil
	case []byte:
		return `'\x` + hex.EncodeToString(v) + `'::bytea`, nil
	case string:
		return quote(v)
	case time.Time:
		return "'" + v.Format("2006-01-02 15:04:05.999999999Z07:00") + "'::timestamptz", nil
	}
	return "", fmt.Errorf("pgwire: cannot bind %T", v)
}

// quote returns s as a string literal, assuming standard_conforming_strings
// (the default since PostgreSQL 9.1): only the quote itself is doubled.
func quote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("pgwire: string contains a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}
