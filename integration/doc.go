// Package integration holds shardkv's end-to-end suite. Its TestMain builds
// bin/shardkv-node, bin/shardkv-proxy and bin/shardkv once into a temporary
// directory (with -race when the tests run with -race); each test starts real
// processes — at least three shard nodes and a proxy on free 127.0.0.1 ports,
// with their data in t.TempDir() and a generated range map — and drives them
// with go-redis and the CLI. Every process a test starts is stopped in
// t.Cleanup, also when the test fails. `go test -short` skips the suite.
package integration
