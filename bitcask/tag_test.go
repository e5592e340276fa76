package bitcask

import "testing"

// A value's tag (PutTagged) is read back in Meta, inside the Tx that wrote
// it and after; an expiry change and a merge keep it, a Put replaces it,
// and reopening starts it at 0: it is never on disk.
func TestPutTagged(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, testOptions())
	tag := func(k string) uint8 {
		t.Helper()
		m, ok := db.MetaOf([]byte(k))
		if !ok {
			t.Fatalf("%s missing", k)
		}
		return m.Tag
	}
	err := db.Update(func(tx *Tx) error {
		if err := tx.PutTagged([]byte("a"), []byte("v"), 0, 7); err != nil {
			return err
		}
		if m, _ := tx.Meta([]byte("a")); m.Tag != 7 {
			t.Errorf("in the Tx: tag %d, want 7", m.Tag)
		}
		if _, m, _ := tx.Get([]byte("a")); m.Tag != 7 {
			t.Errorf("Tx.Get: tag %d, want 7", m.Tag)
		}
		if _, err := tx.SetExpireAt([]byte("a"), db.nowMs()+3600_000); err != nil {
			return err
		}
		if m, _ := tx.Meta([]byte("a")); m.Tag != 7 {
			t.Errorf("after SetExpireAt in the Tx: tag %d, want 7", m.Tag)
		}
		return tx.PutTagged([]byte("b"), []byte("w"), 0, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := tag("a"); got != 7 {
		t.Fatalf("committed: tag %d, want 7", got)
	}
	if _, m, _ := db.Get([]byte("a")); m.Tag != 7 {
		t.Fatalf("Get: tag %d, want 7", m.Tag)
	}
	mustPut(t, db, "b", "x")
	if got := tag("b"); got != 0 {
		t.Fatalf("after Put: tag %d, want 0", got)
	}
	if err := db.Merge(); err != nil {
		t.Fatal(err)
	}
	if got := tag("a"); got != 7 {
		t.Fatalf("after a merge: tag %d, want 7", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, dir, testOptions())
	if got := tag("a"); got != 0 {
		t.Fatalf("after reopening: tag %d, want 0", got)
	}
}
