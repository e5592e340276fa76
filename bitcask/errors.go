package bitcask

import "errors"

// Sentinel errors. Wrapped errors returned by this package match them with errors.Is.
var (
	// ErrNotFound is returned when a key is absent, deleted or expired.
	ErrNotFound = errors.New("bitcask: key not found")
	// ErrCorrupt is wrapped by every error caused by bytes on disk that fail
	// their CRC or break the record format. Corrupt bytes are never returned.
	ErrCorrupt = errors.New("bitcask: corrupt record")
	// ErrLocked is returned by Open when another process (or another DB in
	// this process) holds the directory lock.
	ErrLocked = errors.New("bitcask: directory is locked by another process")
	// ErrClosed is returned by every operation on a closed DB.
	ErrClosed = errors.New("bitcask: database is closed")
	// ErrKeyTooLarge is returned when a key is longer than Options.MaxKeySize.
	ErrKeyTooLarge = errors.New("bitcask: key too large")
	// ErrValueTooLarge is returned when a value is longer than Options.MaxValueSize.
	ErrValueTooLarge = errors.New("bitcask: value too large")
	// ErrTxTooLarge is returned when the records of one Update do not fit in
	// one data file (a file offset is 32 bits).
	ErrTxTooLarge = errors.New("bitcask: transaction too large")
	// ErrReadOnly is returned by writes after a write to a data file failed
	// and the file could not be restored to its last good size; reopen the DB.
	ErrReadOnly = errors.New("bitcask: database is read-only after a failed write")
	// ErrTooManyFiles is returned when the DB would need more than
	// maxOpenFiles data files at once.
	ErrTooManyFiles = errors.New("bitcask: too many data files")
	// ErrTxDone is returned by Tx methods called after the Update that
	// created the Tx returned.
	ErrTxDone = errors.New("bitcask: transaction already finished")
)
