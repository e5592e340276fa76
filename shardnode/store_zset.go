package shardnode

import (
	"errors"

	"github.com/shardkv/shardkv/bitcask"
)

// zstore is the store's part for sorted sets. A key holding another type
// gives bitcask.ErrWrongType; an absent key or member is not an error.
type zstore interface {
	zscore(key, member []byte) (score float64, ok bool, err error)
	zadd(key, member []byte, score float64) (created bool, err error)
	zrem(key, member []byte) (bool, error)
	zcard(key []byte) (int, error)
	// zrank is member's rank, lowest score first.
	zrank(key, member []byte) (rank int, score float64, ok bool, err error)
	zrange(key []byte, q *bitcask.ZRange) ([]bitcask.ZMember, error)
	// zcount is the number of members in q's range, its LIMIT aside.
	zcount(key []byte, q *bitcask.ZRange) (int, error)
}

func (t *txStore) zscore(key, member []byte) (float64, bool, error) {
	return t.tx.ZSetScore(key, member)
}
func (t *txStore) zadd(key, member []byte, score float64) (bool, error) {
	how := t.elemHow(key)
	created, err := t.tx.ZSetAdd(key, member, score)
	if err == nil {
		t.touchAs(key, how, bitcask.TypeZSet, member)
	}
	return created, err
}
func (t *txStore) zrem(key, member []byte) (bool, error) {
	ok, err := t.tx.ZSetRemove(key, member)
	if ok {
		t.touchAs(key, migElem, bitcask.TypeZSet, member)
	}
	return ok, err
}
func (t *txStore) zcard(key []byte) (int, error) { return t.tx.ZSetCard(key) }
func (t *txStore) zrank(key, member []byte) (int, float64, bool, error) {
	return t.tx.ZSetRank(key, member)
}
func (t *txStore) zrange(key []byte, q *bitcask.ZRange) ([]bitcask.ZMember, error) {
	return t.tx.ZSetRange(key, q)
}
func (t *txStore) zcount(key []byte, q *bitcask.ZRange) (int, error) { return t.tx.ZSetCount(key, q) }

func (d *dbStore) zscore(key, member []byte) (float64, bool, error) {
	return d.db.ZSetScore(d.c.keyHash(key), key, member, d.c.now)
}
func (d *dbStore) zadd(key, member []byte, score float64) (bool, error) {
	return false, errReadOnlyStore
}
func (d *dbStore) zrem(key, member []byte) (bool, error) { return false, errReadOnlyStore }
func (d *dbStore) zcard(key []byte) (int, error) {
	n, err := d.db.ZSetCard(d.c.keyHash(key), key, d.c.now)
	if errors.Is(err, bitcask.ErrNotFound) {
		return 0, nil
	}
	return n, err
}
func (d *dbStore) zrank(key, member []byte) (int, float64, bool, error) {
	return d.db.ZSetRank(d.c.keyHash(key), key, member, d.c.now)
}
func (d *dbStore) zrange(key []byte, q *bitcask.ZRange) ([]bitcask.ZMember, error) {
	return d.db.ZSetRange(d.c.keyHash(key), key, q, d.c.now)
}
func (d *dbStore) zcount(key []byte, q *bitcask.ZRange) (int, error) {
	return d.db.ZSetCount(d.c.keyHash(key), key, q, d.c.now)
}
