package conncmd

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shardkv/shardkv/internal/version"
)

// InfoRequest is the sections one INFO asked for.
type InfoRequest struct {
	all      bool
	every    bool            // "all" or "everything": the sections INFO leaves out by default too
	sections map[string]bool // lower case
}

// ParseInfo reads INFO [section ...]: no section, "all", "default" or
// "everything" mean every section; names are case-insensitive.
func ParseInfo(args [][]byte) InfoRequest {
	r := InfoRequest{all: len(args) == 1, sections: map[string]bool{}}
	for _, a := range args[1:] {
		switch s := strings.ToLower(string(a)); s {
		case "all", "everything":
			r.all, r.every = true, true
		case "default":
			r.all = true
		default:
			r.sections[s] = true
		}
	}
	return r
}

// Want reports whether the section (lower case) was asked for.
func (r InfoRequest) Want(section string) bool { return r.all || r.sections[section] }

// WantExtra reports whether a section Redis leaves out of the default INFO
// (commandstats) was asked for, by name or with "all" or "everything".
func (r InfoRequest) WantExtra(section string) bool { return r.every || r.sections[section] }

// WantAny reports whether any of the sections was asked for.
func (r InfoRequest) WantAny(sections ...string) bool {
	for _, s := range sections {
		if r.Want(s) {
			return true
		}
	}
	return false
}

// InfoWriter builds INFO's text: "# Title" headers, "key:value" lines, CRLF,
// a blank line between sections.
type InfoWriter struct{ b strings.Builder }

// Section starts a section.
func (w *InfoWriter) Section(title string) {
	if w.b.Len() > 0 {
		w.b.WriteString("\r\n")
	}
	w.b.WriteString("# ")
	w.b.WriteString(title)
	w.b.WriteString("\r\n")
}

// Field writes one key:value line; v is a string or an integer.
func (w *InfoWriter) Field(k string, v any) {
	w.b.WriteString(k)
	w.b.WriteByte(':')
	switch x := v.(type) {
	case string:
		w.b.WriteString(x)
	case int:
		w.b.WriteString(strconv.Itoa(x))
	case int32:
		w.b.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		w.b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		w.b.WriteString(strconv.FormatUint(x, 10))
	case float64:
		w.b.WriteString(strconv.FormatFloat(x, 'f', 2, 64))
	}
	w.b.WriteString("\r\n")
}

// Line writes a line as it is (the node's per-index lines).
func (w *InfoWriter) Line(s string) {
	w.b.WriteString(s)
	w.b.WriteString("\r\n")
}

// String is the text written so far.
func (w *InfoWriter) String() string { return w.b.String() }

// ServerInfo is what the Server section says about a server that is not the
// same for both.
type ServerInfo struct {
	Role    string // shardkv_role: "proxy" or "shard-node"
	Port    string
	RunID   string
	Started time.Time
}

// WriteServer writes the Server section, the fields tools read to learn
// what they talk to.
func WriteServer(w *InfoWriter, si ServerInfo) {
	w.Section("Server")
	w.Field("redis_version", RedisVersion)
	w.Field("redis_git_sha1", "00000000")
	w.Field("redis_git_dirty", 0)
	w.Field("redis_mode", "standalone")
	w.Field("shardkv_version", version.Version)
	w.Field("shardkv_role", si.Role)
	w.Field("os", runtime.GOOS+" "+runtime.GOARCH)
	w.Field("arch_bits", strconv.Itoa(strconv.IntSize))
	w.Field("go_version", runtime.Version())
	w.Field("process_id", os.Getpid())
	w.Field("run_id", si.RunID)
	w.Field("tcp_port", si.Port)
	w.Field("server_time_usec", time.Now().UnixMicro())
	up := time.Since(si.Started)
	w.Field("uptime_in_seconds", int64(up/time.Second))
	w.Field("uptime_in_days", int64(up/(24*time.Hour)))
	exe, _ := os.Executable()
	w.Field("executable", exe)
	w.Field("config_file", "")
}

// WriteClients writes the Clients section; blocked is the number of
// clients waiting in a blocking pop.
func WriteClients(w *InfoWriter, connected int64, maxClients int, blocked int64) {
	w.Section("Clients")
	w.Field("connected_clients", connected)
	w.Field("maxclients", maxClients)
	w.Field("blocked_clients", blocked)
	w.Field("tracking_clients", 0)
}

// NewRunID returns a random run_id, 40 hex digits as Redis's.
func NewRunID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HumanBytes is Redis's bytesToHuman: 1.50K, 2.00M, ...
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatInt(n, 10) + "B"
}
