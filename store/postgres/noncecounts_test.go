package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rvoip/users-core/store/postgres/pgtest"
	"github.com/rvoip/users-core/store/storetest"
)

// TestTwoPoolsShareNonceCounts runs the nonce-count race across two pools
// on one database, as two nodes would: for each count, exactly one use in
// all wins, and a count a node used is refused at the other.
func TestTwoPoolsShareNonceCounts(t *testing.T) {
	url := pgtest.NewDatabase(t)
	nodes := [2]interface {
		UseNonceCount(ctx context.Context, nonce string, nc uint32, expires time.Time) (bool, error)
	}{open(t, url), open(t, url)}
	ctx := context.Background()
	exp := time.Now().Add(5 * time.Minute)
	const nonce = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	const counts, perNode = 20, 4
	for nc := uint32(1); nc <= counts; nc++ {
		var wins atomic.Int32
		storetest.AtOnce(2*perNode, func(i int) {
			ok, err := nodes[i%2].UseNonceCount(ctx, nonce, nc, exp)
			if err != nil {
				t.Errorf("node %d, nc %d: %v", i%2, nc, err)
			}
			if ok {
				wins.Add(1)
			}
		})
		if got := wins.Load(); got != 1 {
			t.Fatalf("nc %d: %d uses won across two pools, want exactly 1", nc, got)
		}
	}
	for i, n := range nodes {
		if ok, err := n.UseNonceCount(ctx, nonce, counts, exp); ok || err != nil {
			t.Errorf("node %d reusing nc %d: %v, %v; want refused", i, counts, ok, err)
		}
	}
	if ok, err := nodes[1].UseNonceCount(ctx, nonce, counts+1, exp); !ok || err != nil {
		t.Errorf("the next count: %v, %v", ok, err)
	}
}

// TestNonceCountsSkipTheFlushOnlyThere: nonce counts commit without
// waiting for the WAL flush (the binding commit that follows flushes
// them), every other write keeps the server's setting.
func TestNonceCountsSkipTheFlushOnlyThere(t *testing.T) {
	db := open(t, pgtest.NewDatabase(t))
	main, mainSource, counts, countsSource, err := db.SyncCommitSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts != "off" || countsSource != "client" {
		t.Errorf("nonce-count pool: synchronous_commit %q from %s, want off from client", counts, countsSource)
	}
	if mainSource == "client" {
		t.Errorf("main pool: synchronous_commit %q set by the client, want the server's", main)
	}
}
