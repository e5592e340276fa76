package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shardkv/shardkv/rangemap"
)

// Files of the data directory that record how the cluster places keys.
// placementFile holds "hash_tags" or "whole_key", written when a run first
// uses the directory, so every later run keeps the mode its data was
// written under: turning hash tags on would move every key with a tag to
// another shard, where the proxy would no longer find it. defaultMapFile is
// the embedded default map with that mode, written for the proxy when no
// --map is given (and reread by SHARD.RELOAD).
const (
	placementFile  = "placement"
	defaultMapFile = "default-map.json"
)

const (
	placementTags  = "hash_tags"
	placementWhole = "whole_key"
)

// clusterPlacement decides the placement mode of a run on data dir and sets
// m.HashTags to it. With a map file (mapGiven) the map decides, and a data
// directory that recorded the other mode, or that holds shard data written
// before modes were recorded (whole-key positions), refuses it. With the
// embedded default map the recorded mode stands; a directory that has none
// gets hash tags when it is new and whole-key positions when a shard
// directory already holds files. The mode is recorded when it was not.
func clusterPlacement(dir string, m *rangemap.Map, mapGiven bool) error {
	path := filepath.Join(dir, placementFile)
	data, err := os.ReadFile(path)
	recorded := ""
	switch {
	case err == nil:
		recorded = strings.TrimSpace(string(data))
		if recorded != placementTags && recorded != placementWhole {
			return fmt.Errorf("%s must say %s or %s, not %q", path, placementTags, placementWhole, recorded)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	fresh := true
	for _, s := range m.Shards {
		if entries, err := os.ReadDir(filepath.Join(dir, s.Name)); err == nil && len(entries) > 0 {
			fresh = false
		}
	}
	want := placementWhole
	if m.HashTags {
		want = placementTags
	}
	switch {
	case recorded != "" && mapGiven && recorded != want:
		return fmt.Errorf("the map says hash_tags %v, but %s was created with %s placement (%s); the placement of a cluster that holds data cannot change: its keys with a tag would move to other shards (use a new --data directory, or set \"hash_tags\": %v in the map)",
			m.HashTags, dir, recorded, path, recorded == placementTags)
	case recorded != "":
		m.HashTags = recorded == placementTags
		return nil
	case mapGiven && !fresh && m.HashTags:
		return fmt.Errorf("the map says hash_tags true, but %s holds shard data written with whole-key placement (it has no %s file); its keys with a tag would move to other shards (use a new --data directory, or remove \"hash_tags\" from the map)", dir, placementFile)
	case !mapGiven:
		m.HashTags = fresh
	}
	mode := placementWhole
	if m.HashTags {
		mode = placementTags
	}
	if err := writeFileAtomic(path, []byte(mode+"\n")); err != nil {
		return fmt.Errorf("recording the placement mode: %w", err)
	}
	return nil
}

// writeDefaultMap writes m, the embedded default map with the data
// directory's placement mode, for the proxy, and returns its path.
func writeDefaultMap(dir string, m *rangemap.Map) (string, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, defaultMapFile)
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return "", fmt.Errorf("writing the proxy's map: %w", err)
	}
	return path, nil
}
