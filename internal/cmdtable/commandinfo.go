package cmdtable

import "github.com/shardkv/shardkv/resp"

// AppendCommandInfo appends Redis 7's ten-element COMMAND INFO entry for a
// row of the table: name, arity, flags, first key, last key, step, ACL
// categories, tips, key specifications, subcommands (the entries of the
// subcommands the server on side s serves). Both servers reply it, so
// clients that read key specs (cluster-aware libraries) see one shape.
func AppendCommandInfo(b []byte, proto resp.Proto, c *Command, s Side) []byte {
	b = resp.AppendArray(b, 10)
	b = resp.AppendBulkString(b, c.Name)
	b = resp.AppendInt(b, int64(c.Arity))
	flags := c.Flags.Names()
	first, last, step := c.FirstKey, c.LastKey, c.Step
	if c.MoreKeys != nil {
		flags = append(flags, "movablekeys")
	}
	if c.KeyNum > 0 {
		// Redis's legacy key range cannot say "counted by an argument"
		// (ZUNIONSTORE's keeps its destination).
		flags = append(flags, "movablekeys")
		if first > c.KeyNum {
			first, last, step = 0, 0, 0
		}
	}
	b = resp.AppendSet(b, proto, len(flags))
	for _, f := range flags {
		b = resp.AppendSimple(b, f)
	}
	b = resp.AppendInt(b, int64(first))
	b = resp.AppendInt(b, int64(last))
	b = resp.AppendInt(b, int64(step))
	cats := c.ACLCategories()
	b = resp.AppendSet(b, proto, len(cats))
	for _, cat := range cats {
		b = resp.AppendSimple(b, cat)
	}
	b = resp.AppendSet(b, proto, 0) // tips
	switch {
	case c.FirstKey <= 0:
		b = resp.AppendArray(b, 0)
	case c.KeyNum > 0:
		b = appendKeyNumSpecs(b, proto, c)
	default:
		b = resp.AppendArray(b, 1)
		b = appendKeySpec(b, proto, c)
	}
	n := 0
	for i := range c.Subcommands {
		if c.Subcommands[i].ServedOn(s) {
			n++
		}
	}
	b = resp.AppendArray(b, n)
	for i := range c.Subcommands {
		if sub := &c.Subcommands[i]; sub.ServedOn(s) {
			b = AppendCommandInfo(b, proto, sub, s)
		}
	}
	return b
}

// appendKeySpec appends the one key specification a row describes: its keys
// start at FirstKey and run to LastKey in steps of Step.
func appendKeySpec(b []byte, proto resp.Proto, c *Command) []byte {
	kf := [2]string{"RO", "access"}
	if c.Flags&FlagWrite != 0 {
		kf = [2]string{"RW", "update"}
	}
	b = appendSpecStart(b, proto, kf, c.FirstKey)
	b = resp.AppendBulkString(b, "find_keys")
	b = resp.AppendMap(b, proto, 2)
	b = resp.AppendBulkString(b, "type")
	b = resp.AppendBulkString(b, "range")
	b = resp.AppendBulkString(b, "spec")
	b = resp.AppendMap(b, proto, 3)
	// Redis counts lastkey from the first key; a negative one counts from the end.
	last := int64(c.LastKey)
	if last >= 0 {
		last -= int64(c.FirstKey)
	}
	b = resp.AppendBulkString(b, "lastkey")
	b = resp.AppendInt(b, last)
	b = resp.AppendBulkString(b, "keystep")
	b = resp.AppendInt(b, int64(c.Step))
	b = resp.AppendBulkString(b, "limit")
	return resp.AppendInt(b, 0)
}

// AppendCommandDocs appends one COMMAND DOCS entry: the name, then a map of
// the summary and group the table holds.
func AppendCommandDocs(b []byte, proto resp.Proto, c *Command) []byte {
	b = resp.AppendBulkString(b, c.Name)
	b = resp.AppendMap(b, proto, 2)
	b = resp.AppendBulkString(b, "summary")
	b = resp.AppendBulkString(b, c.Summary)
	b = resp.AppendBulkString(b, "group")
	return resp.AppendBulkString(b, c.Group)
}

// ACLCategories derives a row's ACL categories the way Redis assigns them:
// read or write, the data type's category, admin, and fast or slow.
func (c *Command) ACLCategories() []string {
	var cats []string
	switch {
	case c.Flags&FlagWrite != 0:
		cats = append(cats, "@write")
	case c.Flags&FlagReadonly != 0:
		cats = append(cats, "@read")
	}
	switch {
	case c.Name == "sort" || c.Name == "sort_ro":
		// Generic in COMMAND DOCS, but ACL sees its types, and BY/GET
		// read keys the arguments do not name.
		return append(cats, "@set", "@sortedset", "@list", "@slow", "@dangerous")
	}
	switch c.Group {
	case "string":
		cats = append(cats, "@string")
	case "hash":
		cats = append(cats, "@hash")
	case "set":
		cats = append(cats, "@set")
	case "sorted-set":
		cats = append(cats, "@sortedset")
	case "list":
		cats = append(cats, "@list")
	case "generic":
		cats = append(cats, "@keyspace")
	case "connection":
		cats = append(cats, "@connection")
	case "transactions":
		cats = append(cats, "@transaction")
	case "pubsub":
		cats = append(cats, "@pubsub")
	}
	if c.Flags&FlagAdmin != 0 {
		cats = append(cats, "@admin", "@dangerous")
	}
	if c.Flags&FlagFast != 0 {
		cats = append(cats, "@fast")
	} else {
		cats = append(cats, "@slow")
	}
	if c.Flags&FlagBlocking != 0 {
		cats = append(cats, "@blocking")
	}
	return cats
}

// appendKeyNumSpecs appends the key specifications of a row whose keys a
// numkeys argument counts: its fixed keys before numkeys (ZUNIONSTORE's
// destination), then the counted ones.
func appendKeyNumSpecs(b []byte, proto resp.Proto, c *Command) []byte {
	fixed := c.FirstKey < c.KeyNum
	n := 1
	if fixed {
		n = 2
	}
	b = resp.AppendArray(b, n)
	if fixed {
		b = appendKeySpec(b, proto, c)
	}
	kf := [2]string{"RO", "access"}
	if c.Flags&FlagWrite != 0 && !fixed {
		kf = [2]string{"RW", "access"} // ZMPOP's keys: read and popped
	}
	b = appendSpecStart(b, proto, kf, c.KeyNum)
	b = resp.AppendBulkString(b, "find_keys")
	b = resp.AppendMap(b, proto, 2)
	b = resp.AppendBulkString(b, "type")
	b = resp.AppendBulkString(b, "keynum")
	b = resp.AppendBulkString(b, "spec")
	b = resp.AppendMap(b, proto, 3)
	b = resp.AppendBulkString(b, "keynumidx")
	b = resp.AppendInt(b, 0)
	b = resp.AppendBulkString(b, "firstkey")
	b = resp.AppendInt(b, 1)
	b = resp.AppendBulkString(b, "keystep")
	return resp.AppendInt(b, 1)
}

// appendSpecStart appends a key specification's map, its flags and its
// begin_search (an index), up to its find_keys.
func appendSpecStart(b []byte, proto resp.Proto, flags [2]string, index int) []byte {
	b = resp.AppendMap(b, proto, 3)
	b = resp.AppendBulkString(b, "flags")
	b = resp.AppendSet(b, proto, len(flags))
	for _, f := range flags {
		b = resp.AppendSimple(b, f)
	}
	b = resp.AppendBulkString(b, "begin_search")
	b = resp.AppendMap(b, proto, 2)
	b = resp.AppendBulkString(b, "type")
	b = resp.AppendBulkString(b, "index")
	b = resp.AppendBulkString(b, "spec")
	b = resp.AppendMap(b, proto, 1)
	b = resp.AppendBulkString(b, "index")
	return resp.AppendInt(b, int64(index))
}
