package coherent

import (
	"context"

	"github.com/sharednothing/sharednothing/replicapin"
)

// Replicapin adapts a *replicapin.DB to [Replicas]: reads that must see a
// position go to the primary (replicapin.UsePrimary), and a position is
// replayed once every replica has reported a position covering it (a
// replica that is down keeps the last position it reported).
func Replicapin(db *replicapin.DB) Replicas { return pinDB{db} }

type pinDB struct{ db *replicapin.DB }

func (p pinDB) AtLeast(ctx context.Context, _ Position) context.Context {
	return replicapin.UsePrimary(ctx)
}

func (p pinDB) Replayed(pos Position) bool {
	for _, r := range p.db.Stats().Replicas {
		if !r.Position.Covers(pos) {
			return false
		}
	}
	return true
}
