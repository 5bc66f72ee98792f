package coherent

import (
	"context"

	"github.com/sharednothing/sharednothing/replicapin"
)

// Replicapin adapts a *replicapin.DB to [Replicas]: reads that must see a
// position go to a replica that has replayed it, or to the primary
// (replicapin.AtLeast, honoured by DB.Read and DB.Reader), and a position
// is replayed once every replica has reported a position covering it
// (DB.Replayed).
func Replicapin(db *replicapin.DB) Replicas { return pinDB{db} }

type pinDB struct{ db *replicapin.DB }

func (p pinDB) AtLeast(ctx context.Context, pos Position) context.Context {
	return replicapin.AtLeast(ctx, pos)
}

func (p pinDB) Replayed(pos Position) bool { return p.db.Replayed(pos) }
