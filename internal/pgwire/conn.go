// Package pgwire is a small PostgreSQL driver for database/sql written on
// the standard library alone, for the toolkit's own tests: with it, the
// library module's tests run against a real PostgreSQL without pulling a
// driver (and its dependencies) into every user's module graph.
//
// It speaks the version 3 frontend/backend protocol's simple-query flow
// over TCP with trust authentication (what the test clusters use), binds
// arguments client-side as SQL literals, returns values in text form
// converted to Go types by column type, and delivers LISTEN/NOTIFY
// notifications through [Conn.WaitForNotification]. It is not a
// production driver: no TLS, no passwords, no extended protocol. Real
// applications use pgx (the example and bench modules do).
//
// DSNs are URLs: postgres://user@host:port[,host:port…]/db?connect_timeout=2&target_session_attrs=read-write
package pgwire

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "pgwire"

func init() { sql.Register(DriverName, Driver{}) }

// Driver is the database/sql driver.
type Driver struct{}

// Open connects to dsn.
func (Driver) Open(dsn string) (driver.Conn, error) {
	return Connect(context.Background(), dsn)
}

// OpenConnector implements driver.DriverContext so sql.OpenDB-style
// contexts reach Connect.
func (Driver) OpenConnector(dsn string) (driver.Connector, error) {
	if _, err := parseDSN(dsn); err != nil {
		return nil, err
	}
	return connector{dsn}, nil
}

type connector struct{ dsn string }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) { return Connect(ctx, c.dsn) }
func (connector) Driver() driver.Driver                              { return Driver{} }

// Error is an error reported by the server.
type Error struct {
	Severity, Code, Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pgwire: %s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

// Notification is one NOTIFY delivered to a listening connection.
type Notification struct {
	PID     uint32
	Channel string
	Payload string
}

type config struct {
	hosts       []string
	user, db    string
	timeout     time.Duration
	readWrite   bool
	application string
}

func parseDSN(dsn string) (config, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return config{}, fmt.Errorf("pgwire: DSN must be a postgres:// URL")
	}
	c := config{user: "postgres", db: strings.TrimPrefix(u.Path, "/"), timeout: 10 * time.Second}
	if u.User != nil && u.User.Username() != "" {
		c.user = u.User.Username()
	}
	if c.db == "" {
		c.db = c.user
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "5432")
		}
		c.hosts = append(c.hosts, h)
	}
	if len(c.hosts) == 0 {
		return config{}, fmt.Errorf("pgwire: DSN has no host")
	}
	q := u.Query()
	if s := q.Get("connect_timeout"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return config{}, fmt.Errorf("pgwire: bad connect_timeout %q", s)
		}
		if n > 0 {
			c.timeout = time.Duration(n) * time.Second
		}
	}
	switch a := q.Get("target_session_attrs"); a {
	case "", "any":
	case "read-write", "primary":
		c.readWrite = true
	default:
		return config{}, fmt.Errorf("pgwire: unsupported target_session_attrs %q", a)
	}
	c.application = q.Get("application_name")
	return c, nil
}

// Conn is one connection. database/sql uses it through the driver
// interfaces; tests reach it with (*sql.Conn).Raw for
// [Conn.WaitForNotification].
type Conn struct {
	mu      sync.Mutex // one exchange at a time
	nc      net.Conn
	r       *bufio.Reader
	w       []byte
	broken  bool
	pending []Notification
	params  map[string]string
	inTx    bool
	waiting bool // in WaitForNotification: readMsg returns on a notification
}

// Connect opens a connection to the first host of dsn that accepts one
// (and, with target_session_attrs=read-write, is not read-only).
func Connect(ctx context.Context, dsn string) (*Conn, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, host := range cfg.hosts {
		c, err := dial(ctx, cfg, host)
		if err == nil && cfg.readWrite {
			var ro string
			ro, err = c.queryString(ctx, "SHOW transaction_read_only")
			if err == nil && ro != "off" {
				err = fmt.Errorf("pgwire: %s is read-only", host)
			}
			if err != nil {
				c.Close()
			}
		}
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func dial(ctx context.Context, cfg config, host string) (*Conn, error) {
	d := net.Dialer{Timeout: cfg.timeout}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("pgwire: %w", err)
	}
	c := &Conn{nc: nc, r: bufio.NewReaderSize(nc, 32<<10), params: map[string]string{}}
	nc.SetDeadline(time.Now().Add(cfg.timeout))
	defer nc.SetDeadline(time.Time{})
	// StartupMessage: length, protocol 3.0, key/value pairs.
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, kv := range [][2]string{{"user", cfg.user}, {"database", cfg.db}, {"application_name", cfg.application}, {"client_encoding", "UTF8"}} {
		if kv[1] == "" {
			continue
		}
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return nil, fmt.Errorf("pgwire: %w", err)
	}
	for {
		t, body, err := c.readMsg()
		if err != nil {
			nc.Close()
			return nil, err
		}
		switch t {
		case 'R':
			if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
				nc.Close()
				return nil, errors.New("pgwire: server asks for a password; only trust authentication is supported")
			}
		case 'E':
			nc.Close()
			return nil, parseError(body)
		case 'Z':
			return c, nil
		}
	}
}

// readMsg reads one message, handling the asynchronous ones (parameter
// status, notices, notifications) itself.
func (c *Conn) readMsg() (byte, []byte, error) {
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			c.broken = true
			return 0, nil, fmt.Errorf("pgwire: %w", err)
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<30 {
			c.broken = true
			return 0, nil, errors.New("pgwire: bad message length")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c.r, body); err != nil {
			c.broken = true
			return 0, nil, fmt.Errorf("pgwire: %w", err)
		}
		switch hdr[0] {
		case 'N': // notice
			continue
		case 'S':
			k, rest := cstring(body)
			v, _ := cstring(rest)
			c.params[k] = v
			continue
		case 'A':
			if len(body) >= 4 {
				ch, rest := cstring(body[4:])
				p, _ := cstring(rest)
				c.pending = append(c.pending, Notification{PID: binary.BigEndian.Uint32(body), Channel: ch, Payload: p})
			}
			if c.waiting {
				return 'A', nil, nil
			}
			continue
		}
		return hdr[0], body, nil
	}
}

func cstring(b []byte) (string, []byte) {
	for i, x := range b {
		if x == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}

func parseError(body []byte) error {
	e := &Error{}
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		var v string
		v, body = cstring(body[1:])
		switch f {
		case 'S':
			e.Severity = v
		case 'C':
			e.Code = v
		case 'M':
			e.Message = v
		}
	}
	return e
}

// result is what one simple query returned (its first result set).
type result struct {
	cols  []string
	types []uint32
	rows  [][][]byte // nil cell = NULL
	tag   string
}

// exchange sends one simple query and reads to ReadyForQuery, honouring ctx
// by breaking the connection when it is done.
func (c *Conn) exchange(ctx context.Context, query string) (*result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return nil, driver.ErrBadConn
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	res, err := c.exchangeLocked(query)
	if !stop() {
		c.broken = true
		return nil, ctx.Err()
	}
	return res, err
}

func (c *Conn) exchangeLocked(query string) (*result, error) {
	c.w = append(c.w[:0], 'Q', 0, 0, 0, 0)
	c.w = append(c.w, query...)
	c.w = append(c.w, 0)
	binary.BigEndian.PutUint32(c.w[1:], uint32(len(c.w)-1))
	if _, err := c.nc.Write(c.w); err != nil {
		c.broken = true
		return nil, fmt.Errorf("pgwire: %w", err)
	}
	var res *result
	var qerr error
	sets := 0
	for {
		t, body, err := c.readMsg()
		if err != nil {
			return nil, err
		}
		switch t {
		case 'T':
			sets++
			if sets > 1 {
				continue
			}
			res = &result{}
			n := int(binary.BigEndian.Uint16(body))
			body = body[2:]
			for range n {
				var name string
				name, body = cstring(body)
				if len(body) < 18 {
					c.broken = true
					return nil, errors.New("pgwire: short row description")
				}
				res.cols = append(res.cols, name)
				res.types = append(res.types, binary.BigEndian.Uint32(body[6:]))
				body = body[18:]
			}
		case 'D':
			if sets > 1 || res == nil {
				continue
			}
			n := int(binary.BigEndian.Uint16(body))
			body = body[2:]
			row := make([][]byte, n)
			for i := range n {
				l := int32(binary.BigEndian.Uint32(body))
				body = body[4:]
				if l >= 0 {
					row[i] = body[:l:l]
					body = body[l:]
				}
			}
			res.rows = append(res.rows, row)
		case 'C':
			if res == nil {
				res = &result{}
			}
			if res.tag == "" {
				res.tag, _ = cstring(body)
			}
		case 'I':
			if res == nil {
				res = &result{}
			}
		case 'E':
			if qerr == nil {
				qerr = parseError(body)
			}
		case 'Z':
			if len(body) > 0 {
				c.inTx = body[0] != 'I'
			}
			if qerr != nil {
				return nil, qerr
			}
			if res == nil {
				res = &result{}
			}
			return res, nil
		}
	}
}

func (c *Conn) queryString(ctx context.Context, q string) (string, error) {
	res, err := c.exchange(ctx, q)
	if err != nil {
		return "", err
	}
	if len(res.rows) == 0 || len(res.rows[0]) == 0 {
		return "", errors.New("pgwire: no rows")
	}
	return string(res.rows[0][0]), nil
}

// WaitForNotification returns the next notification for a channel this
// connection LISTENs on, waiting until one arrives or ctx is done (which
// leaves the connection unusable: close it).
func (c *Conn) WaitForNotification(ctx context.Context) (Notification, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if len(c.pending) > 0 {
			n := c.pending[0]
			c.pending = c.pending[1:]
			return n, nil
		}
		if c.broken {
			return Notification{}, driver.ErrBadConn
		}
		stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
		c.waiting = true
		t, body, err := c.readMsg()
		c.waiting = false
		if !stop() {
			c.broken = true
			return Notification{}, ctx.Err()
		}
		if err != nil {
			return Notification{}, err
		}
		if t == 'E' {
			return Notification{}, parseError(body)
		}
	}
}

// Close sends Terminate and closes the connection.
func (c *Conn) Close() error {
	c.nc.Write([]byte{'X', 0, 0, 0, 4})
	return c.nc.Close()
}

// IsValid implements driver.Validator: a connection broken by an I/O
// error or a cancelled context is not returned to the pool.
func (c *Conn) IsValid() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.broken
}

// ResetSession implements driver.SessionResetter.
func (c *Conn) ResetSession(context.Context) error {
	if !c.IsValid() {
		return driver.ErrBadConn
	}
	return nil
}

// Ping implements driver.Pinger.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.exchange(ctx, "")
	return err
}

// Prepare implements driver.Conn; statements are bound client-side.
func (c *Conn) Prepare(query string) (driver.Stmt, error) { return &stmt{c: c, q: query}, nil }

// Begin implements driver.Conn.
func (c *Conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx.
func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	q := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		q += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		q += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		q += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable, sql.LevelLinearizable:
		q += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return nil, fmt.Errorf("pgwire: unsupported isolation level %d", opts.Isolation)
	}
	if opts.ReadOnly {
		q += " READ ONLY"
	}
	if _, err := c.exchange(ctx, q); err != nil {
		return nil, err
	}
	return tx{c}, nil
}

type tx struct{ c *Conn }

func (t tx) Commit() error {
	_, err := t.c.exchange(context.Background(), "COMMIT")
	return err
}

func (t tx) Rollback() error {
	_, err := t.c.exchange(context.Background(), "ROLLBACK")
	return err
}

// ExecContext implements driver.ExecerContext.
func (c *Conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	q, err := bind(query, args)
	if err != nil {
		return nil, err
	}
	res, err := c.exchange(ctx, q)
	if err != nil {
		return nil, err
	}
	return execResult(res.tag), nil
}

// QueryContext implements driver.QueryerContext.
func (c *Conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, err := bind(query, args)
	if err != nil {
		return nil, err
	}
	res, err := c.exchange(ctx, q)
	if err != nil {
		return nil, err
	}
	return &rows{res: res}, nil
}

// CheckNamedValue implements driver.NamedValueChecker: the types bind
// knows pass through unchanged.
func (c *Conn) CheckNamedValue(nv *driver.NamedValue) error {
	switch v := nv.Value.(type) {
	case nil, int64, float64, bool, []byte, string, time.Time:
		return nil
	case int:
		nv.Value = int64(v)
		return nil
	case int32:
		nv.Value = int64(v)
		return nil
	case uint32:
		nv.Value = int64(v)
		return nil
	}
	var err error
	nv.Value, err = driver.DefaultParameterConverter.ConvertValue(nv.Value)
	return err
}

type stmt struct {
	c *Conn
	q string
}

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.q, named(args))
}
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.q, named(args))
}
func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.q, args)
}
func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.q, args)
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

type execResult string

func (r execResult) LastInsertId() (int64, error) {
	return 0, errors.New("pgwire: LastInsertId is not supported; use RETURNING")
}

func (r execResult) RowsAffected() (int64, error) {
	f := strings.Fields(string(r))
	if len(f) == 0 {
		return 0, nil
	}
	return strconv.ParseInt(f[len(f)-1], 10, 64)
}

type rows struct {
	res *result
	i   int
}

func (r *rows) Columns() []string { return r.res.cols }
func (r *rows) Close() error      { return nil }
func (r *rows) Next(dest []driver.Value) error {
	if r.i >= len(r.res.rows) {
		return io.EOF
	}
	row := r.res.rows[r.i]
	r.i++
	for i := range dest {
		v, err := decode(r.res.types[i], row[i])
		if err != nil {
			return err
		}
		dest[i] = v
	}
	return nil
}
