package shardnode

// listStore is the store's part for lists (bitcask/list.go). A key
// holding another type gives bitcask.ErrWrongType; an absent key is an
// empty list, not an error. Indexes are absolute (the handlers resolve
// Redis's negative ones against llen).
type listStore interface {
	llen(key []byte) (int, error)
	// lpush pushes vals at the head (left) or tail, making the list
	// unless existing (LPUSHX), and returns the length after.
	lpush(key []byte, vals [][]byte, left, existing bool) (int, error)
	// lpop pops up to count elements from the head (left) or the tail.
	lpop(key []byte, left bool, count int) ([][]byte, error)
	// lwalk calls fn with the elements from index from (towards the head
	// when rev) until it returns false; v is valid during the call only,
	// and fn must not use the store. In a transaction that wrote the list,
	// reaching from costs the elements before it: walk from the nearer end.
	lwalk(key []byte, from int, rev bool, fn func(i int, v []byte) bool) error
	lset(key []byte, i int, v []byte) error
	linsert(key []byte, before bool, pivot, v []byte) (int, error)
	lrem(key []byte, count int, v []byte) (int, error)
	// ltrim keeps the indexes [lo, hi).
	ltrim(key []byte, lo, hi int) error
}

func (t *txStore) llen(key []byte) (int, error) { return t.tx.ListLen(key) }
func (t *txStore) lpush(key []byte, vals [][]byte, left, existing bool) (int, error) {
	n, err := t.tx.ListPush(key, vals, left, existing)
	if err == nil && n > 0 {
		t.touch(key)
		t.pushed(key)
	}
	return n, err
}
func (t *txStore) lpop(key []byte, left bool, count int) ([][]byte, error) {
	vs, err := t.tx.ListPop(key, left, count)
	if err == nil && len(vs) > 0 {
		t.touch(key)
	}
	return vs, err
}
func (t *txStore) lwalk(key []byte, from int, rev bool, fn func(i int, v []byte) bool) error {
	return t.tx.ListWalk(key, from, rev, fn)
}
func (t *txStore) lset(key []byte, i int, v []byte) error {
	err := t.tx.ListSet(key, i, v)
	if err == nil {
		t.touch(key)
	}
	return err
}
func (t *txStore) linsert(key []byte, before bool, pivot, v []byte) (int, error) {
	n, err := t.tx.ListInsert(key, before, pivot, v)
	if err == nil && n > 0 {
		t.touch(key)
		t.pushed(key)
	}
	return n, err
}
func (t *txStore) lrem(key []byte, count int, v []byte) (int, error) {
	n, err := t.tx.ListRemove(key, count, v)
	if err == nil && n > 0 {
		t.touch(key)
	}
	return n, err
}
func (t *txStore) ltrim(key []byte, lo, hi int) error {
	n, err := t.tx.ListLen(key)
	if err != nil || n == 0 {
		return err
	}
	if err := t.tx.ListTrim(key, lo, hi); err != nil {
		return err
	}
	t.touch(key) // Redis signals LTRIM of an existing list, trimmed or not
	return nil
}

// pushed says that the list at key, of the transaction's database, got
// elements: a hook for blocking pops (ListPushed), nil when none.
func (t *txStore) pushed(key []byte) {
	if t.c != nil && t.c.srv != nil && t.c.srv.listPushed != nil {
		t.c.srv.listPushed(t.tx.Num(), key)
	}
}

func (d *dbStore) llen(key []byte) (int, error) {
	n, err := d.db.ListLen(d.c.keyHash(key), key, d.c.now)
	return n, notFoundOK(err)
}
func (d *dbStore) lpush(key []byte, vals [][]byte, left, existing bool) (int, error) {
	return 0, errReadOnlyStore
}
func (d *dbStore) lpop(key []byte, left bool, count int) ([][]byte, error) {
	return nil, errReadOnlyStore
}
func (d *dbStore) lwalk(key []byte, from int, rev bool, fn func(i int, v []byte) bool) error {
	return notFoundOK(d.db.ListWalk(d.c.keyHash(key), key, from, rev, d.c.now, fn))
}
func (d *dbStore) lset(key []byte, i int, v []byte) error { return errReadOnlyStore }
func (d *dbStore) linsert(key []byte, before bool, pivot, v []byte) (int, error) {
	return 0, errReadOnlyStore
}
func (d *dbStore) lrem(key []byte, count int, v []byte) (int, error) { return 0, errReadOnlyStore }
func (d *dbStore) ltrim(key []byte, lo, hi int) error                { return errReadOnlyStore }
