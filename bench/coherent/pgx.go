// Package coherent benchmarks cross-instance invalidation with
// sharednothing/coherent over a real PostgreSQL primary on loopback:
// latency from commit to every listener's cache dropping the key, notified
// invalidations per second, and the cost added to a write and to a cache
// hit. The listener is pgx, through the adapter the package documentation
// shows (this file), so that adapter is compiled and exercised here.
package coherent

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sharednothing/sharednothing/coherent"
)

type pgxListener struct{ conn *pgx.Conn }

func (l pgxListener) Listen(ctx context.Context, channel string) error {
	_, err := l.conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	return err
}

func (l pgxListener) WaitForNotification(ctx context.Context) (string, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		return "", err
	}
	return n.Payload, nil
}

func (l pgxListener) Close() error { return l.conn.Close(context.Background()) }

// Dial returns an Options.Dial that opens a pgx connection to dsn.
func Dial(dsn string) func(ctx context.Context) (coherent.Listener, error) {
	return func(ctx context.Context) (coherent.Listener, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return pgxListener{conn}, nil
	}
}
