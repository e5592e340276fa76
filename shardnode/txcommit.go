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

// writePrepare writes p's prepare record, durable before the participant
// votes. The primary's is not written here but with its decision
// (writeDecision): the primary's vote is its decision, so its prepare is
// needed only once it decides COMMIT, and one write (and under always one
// fsync) takes both. A primary that crashes before deciding has lost
// nothing it needs: holding no prepare, it answers a later COMMIT, or a
// participant's TX.STATUS, with ABORT (decide), which is what it would
// answer had it never prepared.
func (s *Server) writePrepare(p *preparedTx) error {
	if s.isSelf(p.primary) {
		return nil
	}
	if err := s.xtx.log.Put(append([]byte{'p'}, p.id...), encodePrepare(p), 0); err != nil {
		return err
	}
	p.durable = true
	return nil
}

// writeDecision records decision d for id, with this node's own prepare
// of id when it is the primary's, not written yet, and d is COMMIT.
func (s *Server) writeDecision(id string, d byte) error {
	t := &s.xtx
	var own *preparedTx
	if d == 'C' {
		t.mu.Lock()
		if p := t.txs[id]; p != nil && !p.busy && !p.durable && len(p.writes) > 0 {
			p.busy = true
			own = p
		}
		t.mu.Unlock()
	}
	seq, err := t.log.UpdateNoWait(func(tx *bitcask.Tx) error {
		if own != nil {
			if err := tx.Put(append([]byte{'p'}, id...), encodePrepare(own), 0); err != nil {
				return err
			}
		}
		return tx.Put(append([]byte{'d'}, id...), []byte{d}, 0)
	})
	if err == nil {
		err = t.log.WaitDurable(seq)
	}
	if own != nil {
		t.mu.Lock()
		own.durable = own.durable || err == nil
		own.busy = false
		t.mu.Unlock()
	}
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
