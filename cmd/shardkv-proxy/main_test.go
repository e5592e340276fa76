package main

import "testing"

func TestProxyProcs(t *testing.T) {
	for _, tc := range []struct {
		flag    int
		fromEnv bool
		current int
		want    int
	}{
		{flag: 0, current: 1, want: 1},
		{flag: 0, current: 2, want: 1},
		{flag: 0, current: 3, want: 1},
		{flag: 0, current: 8, want: 4},
		{flag: 0, fromEnv: true, current: 8, want: 8}, // GOMAXPROCS=8 in the environment
		{flag: 3, fromEnv: true, current: 8, want: 3}, // the flag wins
		{flag: 6, current: 2, want: 6},
	} {
		if got := proxyProcs(tc.flag, tc.fromEnv, tc.current); got != tc.want {
			t.Errorf("proxyProcs(%d, %v, %d) = %d, want %d", tc.flag, tc.fromEnv, tc.current, got, tc.want)
		}
	}
}
