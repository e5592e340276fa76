package rangemap

import "strconv"

// NodeAssignArgs is the SHARD.ASSIGN command (its name first) that gives
// the node at host:port its ranges under m, as the proxies push it: the
// adjacent entries on the node as one range, named after the first, with
// the largest size limit (none when one has none); nil when the node owns
// nothing. Temporary: the ranges lane replaces it with the list form.
func (m *Map) NodeAssignArgs(host string, port int) []string {
	var a *Shard
	for i := range m.Shards {
		s := m.Shards[i]
		if s.Host != host || s.Port != port {
			continue
		}
		if a == nil {
			c := s
			a = &c
			continue
		}
		a.End = s.End
		if a.Size == 0 || s.Size == 0 {
			a.Size = 0
		} else {
			a.Size = max(a.Size, s.Size)
		}
	}
	if a == nil {
		return nil
	}
	args := []string{"SHARD.ASSIGN", a.Name, FormatPosition(a.Start), FormatPosition(a.End), strconv.FormatInt(a.Size, 10)}
	if m.HashTags {
		args = append(args, "HASHTAGS", "1")
	}
	if m.Epoch > 0 {
		args = append(args, "EPOCH", strconv.FormatUint(m.Epoch, 10))
	}
	return args
}
