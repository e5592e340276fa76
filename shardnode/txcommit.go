package shardnode

import (
	"hash/maphash"
	"sync"

	"github.com/shardkv/shardkv/bitcask"
)

// What a cross-shard transaction makes durable, and when
// (docs/TRANSACTIONS.md, "Durability and fsync"). Every wait for an fsync
// here is bitcask's group commit: the messages run off the event loop
// (txexec.go), so the prepares, decisions and commits of concurrent
// transactions that wait at the same time share one fsync of the
// transaction log, or of the data, as the writers of one event-loop pass
// share one (commit.go). Each is still durable before its reply.

// writePrepare writes p's prepare record. A participant's is synced before
// it votes. The primary's is not waited for: the primary's vote is its
// decision, and the decision record, synced before TX.DECIDE replies, is
// written after the prepare in the same log, so its fsync covers the
// prepare too. A primary that crashes before its decision is durable may
// lose its prepare, and then answers any later COMMIT with ABORT (decide),
// which is what it would answer had it never prepared.
func (s *Server) writePrepare(p *preparedTx) error {
	t := &s.xtx
	key := append([]byte{'p'}, p.id...)
	if !s.isSelf(p.primary) {
		return t.log.Put(key, encodePrepare(p), 0)
	}
	_, err := t.log.UpdateNoWait(func(tx *bitcask.Tx) error {
		return tx.Put(key, encodePrepare(p), 0)
	})
	return err
}

// setTxLogSync makes the transaction log follow a new appendfsync
// (CONFIG SET).
func (s *Server) setTxLogSync(p bitcask.SyncPolicy) {
	if s.xtx.log != nil {
		s.xtx.log.SetSyncPolicy(p)
	}
}

// forgetDecision drops the decision record of id (TX.FORGET), without
// waiting for an fsync: the coordinator sends it once every participant
// applied the outcome and dropped its prepare, so no one asks for the
// decision again; a removal lost in a crash leaves a decision record that
// nothing reads, and TX.LIST shows it.
func (s *Server) forgetDecision(id []byte) error {
	t := &s.xtx
	mu := t.decideLock(string(id))
	mu.Lock()
	defer mu.Unlock()
	_, err := t.log.UpdateNoWait(func(tx *bitcask.Tx) error {
		_, err := tx.Delete(append([]byte{'d'}, id...))
		return err
	})
	return err
}

var decideSeed = maphash.MakeSeed()

// decideLock is the mutex that serializes the decisions of transaction
// id. One mutex for all of them made every TX.DECIDE wait for the fsync of
// the one before; transactions with different mutexes record theirs
// together and share the fsync.
func (t *txTable) decideLock(id string) *sync.Mutex {
	return &t.decideMu[maphash.String(decideSeed, id)%uint64(len(t.decideMu))]
}
