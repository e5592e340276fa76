// Package version holds the version of shardkv, the one number that
// shardkv-node, shardkv-proxy and the shardkv CLI print for --version. It
// lives apart from the servers so that every binary can import it without
// importing the proxy or the shard node into each other.
package version

// Version is the shardkv release these binaries are built from. It is a
// variable, not a constant, so that a release build can stamp it:
//
//	go build -ldflags "-X github.com/shardkv/shardkv/internal/version.Version=0.3.0" ./cmd/...
//
// (`make build VERSION=0.3.0` does that.)
var Version = "0.3.0-dev"

// String is what the binary called name prints for --version, in the form
// "shardkv-node 0.3.0-dev".
func String(name string) string {
	return name + " " + Version
}
