// Package glob is Redis's glob-style pattern matching (stringmatchlen), as
// KEYS, SCAN MATCH and CONFIG GET use it.
package glob
