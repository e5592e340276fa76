package bitcask

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// SyncPolicy says when written records are fsynced, like Redis's appendfsync.
type SyncPolicy int

const (
	// SyncEverySec fsyncs in the background once a second (the default).
	SyncEverySec SyncPolicy = iota
	// SyncAlways returns from a write only after an fsync that covers it.
	// Concurrent writers share one fsync (group commit).
	SyncAlways
	// SyncNo never fsyncs on the write path; the OS writes back when it
	// likes. Close still fsyncs.
	SyncNo
)

// ParseSyncPolicy parses the appendfsync spellings "always", "everysec" and "no".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch strings.ToLower(s) {
	case "always":
		return SyncAlways, nil
	case "everysec":
		return SyncEverySec, nil
	case "no":
		return SyncNo, nil
	}
	return 0, fmt.Errorf("bitcask: unknown sync policy %q (want always, everysec or no)", s)
}

// String returns the appendfsync spelling of p.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncEverySec:
		return "everysec"
	case SyncNo:
		return "no"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Hard limits of the format and of the key directory; Options may only be
// stricter.
const (
	// maxFileSizeLimit keeps every record offset inside a data file below
	// 2^32 even when a maximal record starts just under the limit.
	maxFileSizeLimit = 2 << 30
	// maxKeySizeLimit bounds Options.MaxKeySize.
	maxKeySizeLimit = 512 << 20
	// maxValueSizeLimit bounds Options.MaxValueSize (Redis's proto-max-bulk-len).
	maxValueSizeLimit = 512 << 20
	// minFileSize keeps tests able to use tiny files without making every
	// record rotate.
	minFileSize = 256
)

// Options configures a DB. Start from DefaultOptions and change fields;
// Open calls Validate.
type Options struct {
	// Sync is the fsync policy; it can be changed at run time with
	// DB.SetSyncPolicy. Default SyncEverySec.
	Sync SyncPolicy
	// MaxFileSize is the size past which the active data file is closed
	// for writing and a new one started. The records of one Update are
	// never split across files, so a file can exceed it by one Update.
	// Default 256 MiB; at least 256 bytes, at most 2 GiB.
	MaxFileSize int64
	// MaxKeySize bounds key length. Keys live in memory in the key
	// directory, so the default is 1 MiB rather than Redis's 512 MiB;
	// at most 512 MiB.
	MaxKeySize int
	// MaxValueSize bounds value length. Default and maximum 512 MiB, like
	// Redis's proto-max-bulk-len.
	MaxValueSize int64
	// MergeMinDeadBytes and MergeDeadRatio trigger a background merge of
	// the oldest data files when they hold at least MergeMinDeadBytes dead
	// bytes, at least MergeDeadRatio of their size, and the newest of them
	// is itself at least MergeDeadRatio dead. The active file counts too (a
	// merge that takes it starts a new one first), so dead data is
	// reclaimed even when it all fits in one file. Defaults 64 MiB and 0.5.
	MergeMinDeadBytes int64
	MergeDeadRatio    float64
	// MergeCheckInterval is how often the triggers are checked; 0 turns
	// background merges off (DB.Merge still works). After a failed
	// background merge the next is tried 2, 4, ... up to 64 intervals
	// later. Default 15s.
	MergeCheckInterval time.Duration
	// ExpirySweepInterval is how often the background sweep samples keys
	// with an expiry and removes expired ones, like Redis's active expire
	// cycle; 0 turns it off (expired keys are still invisible and removed
	// lazily). Default 100ms.
	ExpirySweepInterval time.Duration
	// Logger receives recovery, merge and I/O error reports. Default
	// hclog.NewNullLogger().
	Logger hclog.Logger
	// Clock returns the current time; expiry and record timestamps use it.
	// Default time.Now. Tests set it to move time.
	Clock func() time.Time
	// Namespace names the group a key is counted under in NamespaceStats
	// (shardkv passes its index rule). It must be a pure function of the key
	// and may return a subslice of it. Nil counts every key under "".
	Namespace func(key []byte) []byte
	// DisableHints turns off writing hint files (Open still uses the ones
	// present). Only benchmarks and tests want this.
	DisableHints bool
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		Sync:                SyncEverySec,
		MaxFileSize:         256 << 20,
		MaxKeySize:          1 << 20,
		MaxValueSize:        512 << 20,
		MergeMinDeadBytes:   64 << 20,
		MergeDeadRatio:      0.5,
		MergeCheckInterval:  15 * time.Second,
		ExpirySweepInterval: 100 * time.Millisecond,
		Logger:              hclog.NewNullLogger(),
		Clock:               time.Now,
	}
}

// Validate reports the first setting that is out of range. A nil Logger or
// Clock is not an error: Open substitutes the default.
func (o Options) Validate() error {
	switch {
	case o.Sync != SyncAlways && o.Sync != SyncEverySec && o.Sync != SyncNo:
		return fmt.Errorf("bitcask: Sync %d is not a SyncPolicy", int(o.Sync))
	case o.MaxFileSize < minFileSize || o.MaxFileSize > maxFileSizeLimit:
		return fmt.Errorf("bitcask: MaxFileSize %d out of range [%d, %d]", o.MaxFileSize, minFileSize, maxFileSizeLimit)
	case o.MaxKeySize < 1 || o.MaxKeySize > maxKeySizeLimit:
		return fmt.Errorf("bitcask: MaxKeySize %d out of range [1, %d]", o.MaxKeySize, maxKeySizeLimit)
	case o.MaxValueSize < 1 || o.MaxValueSize > maxValueSizeLimit:
		return fmt.Errorf("bitcask: MaxValueSize %d out of range [1, %d]", o.MaxValueSize, maxValueSizeLimit)
	case o.MergeMinDeadBytes < 0:
		return fmt.Errorf("bitcask: MergeMinDeadBytes %d is negative", o.MergeMinDeadBytes)
	case !(o.MergeDeadRatio >= 0 && o.MergeDeadRatio <= 1):
		return fmt.Errorf("bitcask: MergeDeadRatio %v out of range [0, 1]", o.MergeDeadRatio)
	case o.MergeCheckInterval < 0:
		return fmt.Errorf("bitcask: MergeCheckInterval %v is negative", o.MergeCheckInterval)
	case o.ExpirySweepInterval < 0:
		return fmt.Errorf("bitcask: ExpirySweepInterval %v is negative", o.ExpirySweepInterval)
	}
	return nil
}
