// Package bitcask is shardkv's storage engine: append-only data files of
// CRC-checked records and an in-memory key directory that points at the
// newest record of every key (Basho's Bitcask, with the fields a Redis
// server needs).
//
// # Records
//
// A data file is a sequence of records and nothing else. Every integer is
// little endian. A record is a 40-byte header, the key, then the value:
//
//	offset  size  field
//	     0     4  CRC-32C (Castagnoli) of bytes 4 .. end of the value
//	     4     8  timestamp: unix milliseconds when the record was written (int64)
//	    12     8  sequence number (uint64): orders all records of a DB;
//	              1 for the first record, +1 for each record written
//	    20     8  expire-at: absolute unix milliseconds, 0 = no expiry (int64, >= 0)
//	    28     4  key length K (uint32)
//	    32     4  value length V (uint32): stored bytes, so 8 for an integer
//	    36     1  kind: 1 put, 2 tombstone, 3 expire, 4 flush-all,
//	              5 collection root, 6 element put, 7 element tombstone,
//	              8 flush-db
//	    37     1  flags: 0x01 first record of a batch, 0x02 last record
//	              of a batch (a single-record batch has both); bits 4-7
//	              the record's database, 0-15; bits 2-3 0
//	    38     1  key type: 0 bytes for kinds 1-4; for kinds 5-7 the
//	              collection's type: 1 hash, 2 set, 3 sorted set
//	    39     1  value type: 0 bytes, 1 integer
//	    40     K  key
//	  40+K     V  value
//
// Kinds:
//   - put: the key now has the value and expire-at.
//   - tombstone: the key is deleted. V = 0, expire-at 0.
//   - expire: the key keeps its value and now has expire-at (0 = persist).
//     V = 0. Changing an expiry never rewrites a large value.
//   - flush-all: every key of every database written before it is
//     deleted. K = V = 0, database 0.
//   - flush-db: every key of the record's database written before it is
//     deleted. K = V = 0.
//   - collection root: the key is now an empty collection of the key
//     type's type (made by its first element write, in the same batch),
//     with expire-at. V = 0. Its sequence number is the collection's
//     generation.
//   - element put: an element of a collection now has the value (for a
//     hash, a field and its value; integers stored as for a put; for a
//     set, a member, V = 0 always; for a sorted set, a member and its
//     score: V = 8, the float64's bits little endian, stored as an integer
//     when those 8 bytes happen to be the canonical decimal form of one, so
//     a read gives the same 8 bytes).
//     expire-at 0: a collection expires as a whole, by its root.
//   - element tombstone: the element is deleted. V = 0, expire-at 0.
//
// The key of an element record names the collection and the element:
//
//	uvarint  the length L of the collection's key
//	L bytes  the collection's key
//	rest     the element (a hash's field, a set's or sorted set's member)
//
// For example the field "f" of the hash "h" set to "v" is, after the
// header, 01 68 66 76: K = 3, V = 1; the member "m" of the set "s" is
// 01 73 6d with key type 2: K = 3, V = 0; the member "m" of the sorted set
// "z" with score 1.5 is 01 7a 6d 00 00 00 00 00 00 f8 3f with key type 3:
// K = 3, V = 8. A record whose key does not split that way is corrupt, and
// so is a set member with a value or a sorted set member whose value is not
// 8 bytes.
//
// An element record belongs to its collection only while the key's live
// record is a root with a lower sequence number (an older generation).
// Deleting, overwriting (a put) or flushing a collection is therefore the
// one record that removes its root, and expiring it the one expire record
// of the root; no record is written per element, and a collection made
// again under the key gets a new root whose generation hides every element
// record of the old one. The last element deleted deletes the key (a
// tombstone, as Redis removes an empty hash).
//
// Value type integer: a put whose value is the canonical decimal form of an
// int64, as Redis decides it (no '+', no leading zeros, not "-0", in range),
// is stored as the 8-byte little-endian int64; a read renders it back to
// exactly the bytes written. Everything else is stored as is. Keys are
// always stored as bytes and may be empty.
//
// # Databases
//
// A DB holds 16 databases (Redis's SELECT 0-15) in the same files. A
// record's database is the high nibble of its flags byte, and its hint
// entry's database byte; files written before databases existed have 0 in
// both, so they open unchanged as database 0. Each database has a key
// directory of its own (DB.Select returns its view), so a key of one
// database never meets a key of another, whatever their bytes. Because
// they share the files and the sequence numbers, one batch can write to
// several databases, which is how a key moves between databases
// atomically (Tx.Select).
//
// Kind 0 is invalid, so zeroed bytes (what a torn write usually leaves)
// never decode. A reader checks the header fields, then that 40+K+V fits in
// what is left of the file — before allocating anything — then the CRC.
//
// # Batches
//
// The records of one Update form a batch: they are encoded into one buffer
// and written with one write, the first with flag 0x01 and the last with
// 0x02. Recovery applies a batch only when it reads all of it, from its
// first to its last record with nothing bad in between; an Update's records
// are therefore all present after a crash or all absent. A batch never spans
// two files.
//
// # Recovery
//
// Open replays the data files in id order (see datafile.go for why that is
// the write order), each from its hint file when the hint's CRC and the
// data file's size match, and by scanning it otherwise. While scanning, a
// record that fails its checks is skipped with the rest of its batch: the
// scanner looks, byte by byte, for the next offset holding a valid record.
// If none follows, the rest is a torn tail: in the newest file it is
// truncated (Stats.RecoveryTruncated), counting the records of an
// incomplete batch; in an older file it is skipped and counted
// (Stats.RecoverySkipped), as is a bad region with valid records after it
// in any file. Every skip is logged. A read re-checks the CRC of the record
// it returns, so Get returns an ErrCorrupt error rather than bad bytes.
//
// # Files
//
// "<id>.data" data files (ids in hex), "<id>.hint" their hint files,
// "*.tmp" files being written (deleted at Open), and "LOCK", flock'ed while
// the DB is open. The active file rotates past Options.MaxFileSize; a file
// that stops being active gets a hint file in the background, and Close
// writes one for the active file, which Open loads and then removes, durably,
// before it appends to that file: no hint describes a file that may still
// grow, so a crash never leaves a hint that disagrees with its file. Merge (merge.go) rewrites the live
// records of the oldest files and deletes them; hint files are described
// in hint.go. A live record that a merge cannot read (bit rot under a key
// that a hint file pointed at) is skipped as recovery skips it: the key
// gets its older value, or none, the key is logged, and the record is
// counted once (Stats.MergeDamagedRecords), since the merge deletes its
// file. A merge that fails removes its own output, and the background merge
// pauses longer after each failure.
//
// Merge copies a live root with its own sequence number (the
// generation; the key directory's Meta.Seq of a collection follows its
// element writes, for WATCH) and the key's current expiry, and the live
// element records with theirs; dead element records are not copied, and
// because a merge takes a prefix of the files, no older element record
// survives in a file the merge kept (see merge.go). A merge that finds a
// collection's live record unreadable keeps its inputs.
//
// # Key directory
//
// Every key's entry (keydir.go) holds its hash, the file and offset of its
// put record, its logical value length and type, its expiry and the
// sequence number of its newest record (Meta.Seq, which changes on every
// write of the key, including an expire record, and not when a merge
// moves the record). A collection's entry points at its root and has a
// type; its elements (element -> file, offset, value length, sequence
// number) are kept beside it, per shard, under the same lock
// (collection.go); a sorted set's members also sit in an ordered index
// of (score, member), a B+tree whose nodes count their items, for ranks
// and ranges in O(log n) (zindex.go, zset.go), rebuilt at Open from each
// member's record (a hint written since scores went into hints,
// "bchint02", carries each member's score; from an older one Open reads
// each score from the data file).
// Entries are sorted by xxhash64, so a SCAN cursor is
// simply the next hash to visit. Open rebuilds the directory in bulk
// (replay.go).
//
// A lookup compares hashes only (guessing the chunk and the position in it
// by interpolation, then galloping), and compares keys only among the
// entries with the key's hash. Get does not even do that when one entry
// has the hash: the record it reads holds the key, and a record of another
// key means a hash collision, so the key is absent. Hash is the hash (the
// same xxhash64 shardkv's range map positions keys by), and the ...Hashed
// methods take it from a caller that computed it already. Meta.Len is the
// value's length, so a caller needing only that never reads the value, and
// ExpiringKeys counts the keys with an expiry from per-shard counters.
//
// # Reads
//
// Get reads a record from its file's read-only shared mapping (mapped on
// first use), which sees the page cache, written by pwrite, directly: no
// system call per read. The record's CRC is checked on every read, so
// corrupt bytes are never returned, and an I/O error while a page is read
// in is a fault that becomes an error (debug.SetPanicOnFault) instead of a
// crash. A record that ends past the mapping is read with pread. Small
// records are copied under the shard's read lock, which keeps the file
// mapped without touching its reference count (see maxLockedCopy).
//
// # Big values
//
// A put's value of 1 MiB or more (bigValueSize, bigvalue.go) is not copied
// into the Update's buffer: the buffer holds its header and key, the value
// stays in the caller's memory until the Update returns, its CRC is
// computed once on its own and combined with the header's (crc.go: zlib's
// crc32_combine for CRC-32C, which also folds in a run of n zeros in
// O(log n)), and the commit writes it behind its header with pwritev. A
// value may be pieces: bytes and runs of zeros. Tx.Splice (SETRANGE, and
// APPEND at the value's end) builds the new value from the old record's
// pieces in the file's mapping, found with SEEK_DATA/SEEK_HOLE, and the
// record's CRC is checked over its data with its holes counted as zeros,
// so neither the old value nor its zeros are read into memory; Tx.GetRange
// copies only the range asked for. A zero run past the file's end is not
// written: the file gets a hole, which reads as zeros, so SETRANGE k
// 536870911 x writes a few bytes and takes a few KiB of disk. The record
// format is unchanged: a reader sees the zeros. A big record read from the
// mapping has its pages dropped from the process (MADV_DONTNEED) once
// copied: they stay in the page cache without counting in the RSS.
//
// # Durability
//
// Options.Sync is Redis's appendfsync: SyncAlways returns from a write only
// after an fsync covering it, shared by concurrent writers (group commit);
// SyncEverySec fsyncs in the background once a second; SyncNo leaves
// writeback to the OS on the write path (hint and merge files, which replace
// data, are always fsynced). The directory is fsynced after files are
// created, renamed or removed. A rotated data file and the directory entry
// of its successor are fsynced by the syncer's next round, before the
// active file (under always, the next writer's wait; under everysec, within
// the second), not by the writer that rotates: that fsync, under the write
// lock, stalled every writer for as long as a 500 MB value took to reach
// the disk. The group commit's fsync of the active file
// is an fdatasync, as Redis's; under SyncAlways the active file is kept a
// chunk of zeros ahead of its data (preallocate in datafile.go), so that
// fdatasync rarely has to write the inode, and the zeros are cut off when
// the file becomes immutable, at Close, and by recovery when a crash left
// them (a file whose length is a whole number of chunks and whose bad tail
// is all zeros: not counted as torn records). UpdateNoWait and WaitDurable
// split Update for callers that commit in a pipeline.
package bitcask
