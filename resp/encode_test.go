package resp

import (
	"math"
	"testing"
)

func TestEncodeGolden(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"simple", AppendSimple(nil, "OK"), "+OK\r\n"},
		{"ok", AppendOK(nil), "+OK\r\n"},
		{"error", AppendError(nil, "ERR bad\r\nthing"), "-ERR bad  thing\r\n"},
		{"int", AppendInt(nil, -42), ":-42\r\n"},
		{"uint", AppendUint(nil, math.MaxUint64), ":18446744073709551615\r\n"},
		{"bulk", AppendBulk(nil, []byte("hello")), "$5\r\nhello\r\n"},
		{"bulk empty", AppendBulk(nil, nil), "$0\r\n\r\n"},
		{"bulk long", AppendBulkString(nil, "0123456789ab"), "$12\r\n0123456789ab\r\n"},
		{"bulk int", AppendBulkInt(nil, 1234), "$4\r\n1234\r\n"},
		{"null2", AppendNull(nil, RESP2), "$-1\r\n"},
		{"null3", AppendNull(nil, RESP3), "_\r\n"},
		{"null array2", AppendNullArray(nil, RESP2), "*-1\r\n"},
		{"null array3", AppendNullArray(nil, RESP3), "_\r\n"},
		{"array", AppendArray(nil, 12), "*12\r\n"},
		{"map2", AppendMap(nil, RESP2, 2), "*4\r\n"},
		{"map3", AppendMap(nil, RESP3, 2), "%2\r\n"},
		{"set2", AppendSet(nil, RESP2, 3), "*3\r\n"},
		{"set3", AppendSet(nil, RESP3, 3), "~3\r\n"},
		{"push3", AppendPush(nil, RESP3, 3), ">3\r\n"},
		{"double2", AppendDouble(nil, RESP2, 1.5), "$3\r\n1.5\r\n"},
		{"double3", AppendDouble(nil, RESP3, 1.5), ",1.5\r\n"},
		{"double inf", AppendDouble(nil, RESP3, math.Inf(-1)), ",-inf\r\n"},
		{"double nan", AppendDouble(nil, RESP3, math.NaN()), ",nan\r\n"},
		{"bool2", AppendBool(nil, RESP2, true), ":1\r\n"},
		{"bool3", AppendBool(nil, RESP3, false), "#f\r\n"},
		{"verbatim2", AppendVerbatim(nil, RESP2, "txt", "hi"), "$2\r\nhi\r\n"},
		{"verbatim3", AppendVerbatim(nil, RESP3, "txt", "hi"), "=6\r\ntxt:hi\r\n"},
		{"bigint3", AppendBigInt(nil, RESP3, "123"), "(123\r\n"},
		{"command", AppendCommandStrings(nil, "GET", "k"), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestEncodeNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() {
		b := AppendArray(buf[:0], 2)
		b = AppendBulkString(b, "key")
		b = AppendInt(b, 12345)
		b = AppendNull(b, RESP3)
		_ = b
	})
	if n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}
