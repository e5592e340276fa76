//go:build race

package integration

// raceEnabled: the tests run with -race, so the binaries are built with it.
const raceEnabled = true
