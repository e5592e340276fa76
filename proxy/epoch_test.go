package proxy

import (
	"testing"
)

// wrongShardEpoch reads the node's refusal as shardnode writes it, and
// only with an epoch.
func TestWrongShardEpoch(t *testing.T) {
	for _, tc := range []struct {
		reply string
		pos   float64
		epoch uint64
		ok    bool
	}{
		{"-WRONGSHARD 0.4 not in [0,0.25) of s1 epoch 4\r\n", 0.4, 4, true},
		{"-WRONGSHARD 0.4 not in [0,0.25) of s1\r\n", 0, 0, false},
		{"-WRONGSHARD 0.4 not in [0,0.25) of s1 epoch x\r\n", 0, 0, false},
		{"-WRONGSHARD 1.5 not in [0,0.25) of s1 epoch 4\r\n", 0, 0, false},
		{"-WRONGSHARD x\r\n", 0, 0, false},
	} {
		pos, epoch, ok := wrongShardEpoch([]byte(tc.reply))
		if ok != tc.ok || (ok && (pos != tc.pos || epoch != tc.epoch)) {
			t.Errorf("%q: %v %v %v, want %v %v %v", tc.reply, pos, epoch, ok, tc.pos, tc.epoch, tc.ok)
		}
	}
}

// FuzzWrongShardEpoch: any WRONGSHARD reply parses without panicking, and
// a position it accepts is in [0,1).
func FuzzWrongShardEpoch(f *testing.F) {
	f.Add("0.4 not in [0,0.25) of s1 epoch 4\r\n")
	f.Add("0.4 not in [0,0.25) of s1\r\n")
	f.Add(" epoch ")
	f.Fuzz(func(t *testing.T, rest string) {
		reply := []byte("-WRONGSHARD " + rest)
		if !isWrongShard(reply) {
			return
		}
		pos, _, ok := wrongShardEpoch(reply)
		if ok && (pos < 0 || pos >= 1) {
			t.Fatalf("%q: position %v accepted", reply, pos)
		}
	})
}
