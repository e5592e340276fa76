package cmdtable

import "strings"

// The commands a cross-shard transaction may run on a participant
// (docs/TRANSACTIONS.md): the shard node prepares them in a dry run and
// keeps the final state of every key they wrote, whatever its type, so any
// data command whose keys are all declared and all in the participant's
// database can take part. The node refuses the others in TX.PREPARE and
// the proxy refuses them in a cross-shard MULTI; both ask Participant.

// participantGroups are the data types whose commands all take part.
var participantGroups = map[string]bool{
	"string": true, "bitmap": true, "hash": true, "set": true, "sorted-set": true, "list": true,
}

// participantCommands are the others that do: the keyspace commands over
// declared keys, and the node commands the coordinator uses to carry key
// states between participants (TX.DUMP, TX.DUMPX, TX.PUT, TX.LOAD).
// PING and ECHO, keyless, read nothing: the proxy runs them on one of the
// participants. Left out: MOVE and COPY ... DB (they write another
// database than the participant's), the other keyless ones (SCAN, KEYS,
// RANDOMKEY, FLUSH*: they read or write every key of a node), OBJECT.
var participantCommands = map[string]bool{
	"del": true, "unlink": true, "exists": true, "touch": true, "type": true, "expire": true,
	"pexpire": true, "expireat": true, "pexpireat": true, "ttl": true, "pttl": true,
	"expiretime": true, "pexpiretime": true, "persist": true, "rename": true, "renamenx": true,
	"copy": true, "sort": true, "sort_ro": true, "ping": true, "echo": true,
	"tx.dump": true, "tx.dumpx": true, "tx.put": true, "tx.load": true,
}

// Participant reports whether the command of args (its name in any case)
// can run on a participant of a cross-shard transaction.
func Participant(args [][]byte) bool {
	c := Lookup(args[0])
	if c == nil {
		return false
	}
	if c.Name == "copy" {
		for _, a := range args[3:] {
			if strings.EqualFold(string(a), "db") {
				return false
			}
		}
	}
	return participantCommands[c.Name] || participantGroups[c.Group]
}

// Keyless reports whether the command of args is a participant command
// without keys (PING, ECHO): it may run on any participant.
func Keyless(args [][]byte) bool {
	c := Lookup(args[0])
	return c != nil && (c.Name == "ping" || c.Name == "echo")
}
