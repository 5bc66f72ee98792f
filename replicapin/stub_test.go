package replicapin_test

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
)

// stubDriver is a database/sql driver for tests and Examples that need no
// real database: every query returns one row holding the integer 1 (so
// TimeWindow's "SELECT 1" succeeds) and every statement succeeds. A data
// source name of "down" fails to connect, like a server that has gone.
type stubDriver struct{}

func init() { sql.Register("stub", stubDriver{}) }

var errDown = errors.New("stub: connection refused")

func (stubDriver) Open(name string) (driver.Conn, error) {
	if name == "down" {
		return nil, errDown
	}
	return stubConn{}, nil
}

type stubConn struct{}

func (stubConn) Prepare(string) (driver.Stmt, error) { return stubStmt{}, nil }
func (stubConn) Close() error                        { return nil }
func (stubConn) Begin() (driver.Tx, error)           { return stubTx{}, nil }

type stubTx struct{}

func (stubTx) Commit() error   { return nil }
func (stubTx) Rollback() error { return nil }

type stubStmt struct{}

func (stubStmt) Close() error                               { return nil }
func (stubStmt) NumInput() int                              { return -1 }
func (stubStmt) Exec([]driver.Value) (driver.Result, error) { return driver.RowsAffected(1), nil }
func (stubStmt) Query([]driver.Value) (driver.Rows, error)  { return &stubRows{}, nil }

type stubRows struct{ done bool }

func (*stubRows) Columns() []string { return []string{"?column?"} }
func (*stubRows) Close() error      { return nil }
func (r *stubRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}
