package main

import (
	"strings"
	"time"
)

// nonceCountGrace is how long after its nonce expired a shared nonce count
// is kept. A node whose clock runs behind the pruning node's still takes
// the nonce for valid during that difference; deleting its count then
// would let a replay through there.
const nonceCountGrace = time.Minute

// sharedDatabase reports whether url names a database that several
// users-core nodes may share (PostgreSQL). Per-node state that must hold
// across nodes (the nonce-count replay check) goes to the database only
// then: a SQLite file has one process, whose memory already sees
// everything.
func sharedDatabase(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}
