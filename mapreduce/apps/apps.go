package apps

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/gfs-go/gfs/mapreduce"
)

// Config keys the built-in apps read.
const (
	// ConfInput selects the input format: "text" (default) or "records".
	ConfInput = "input"
	// ConfPattern is grep's regular expression (Go syntax).
	ConfPattern = "pattern"
	// ConfMapper and ConfReducer are a streaming job's shell commands.
	ConfMapper  = "mapper"
	ConfReducer = "reducer"
	// ConfSortBoundaries holds the sort job's partition boundaries, written
	// by its Prepare: hex-encoded keys, comma-separated, non-decreasing.
	ConfSortBoundaries = "sort.boundaries"
)

// ErrBadConfig is a job Config an app cannot run with (a missing or invalid
// argument).
var ErrBadConfig = errors.New("apps: bad job config")

// All returns the built-in apps by name.
func All() mapreduce.Apps {
	return mapreduce.Apps{
		"wordcount": WordCount,
		"grep":      Grep,
		"index":     Index,
		"sort":      Sort,
		"identity":  Identity,
		"streaming": Streaming,
	}
}

// inputFormat reads ConfInput.
func inputFormat(conf mapreduce.Config) (mapreduce.InputFormat, error) {
	f, err := mapreduce.ParseInputFormat(conf[ConfInput])
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrBadConfig, ConfInput, err)
	}
	return f, nil
}

// eachWord calls fn for every maximal run of Unicode letters in b (the
// words of wordcount and index). Bytes that are not valid UTF-8 separate
// words, as any other non-letter does.
func eachWord(b []byte, fn func(word []byte) error) error {
	start := -1 // start of the current word, -1 outside one
	for i := 0; i < len(b); {
		c := b[i]
		var letter bool
		size := 1
		if c < utf8.RuneSelf {
			letter = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		} else {
			var r rune
			r, size = utf8.DecodeRune(b[i:])
			letter = unicode.IsLetter(r) // utf8.RuneError is not a letter
		}
		switch {
		case letter && start < 0:
			start = i
		case !letter && start >= 0:
			if err := fn(b[start:i]); err != nil {
				return err
			}
			start = -1
		}
		i += size
	}
	if start >= 0 {
		return fn(b[start:])
	}
	return nil
}

// parseCount parses a decimal count without allocating.
func parseCount(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// sumCounts is the reduce and combine function of the counting apps: the
// decimal sum of a key's values.
func sumCounts(app string) mapreduce.ReduceFunc {
	return func(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
		var sum uint64
		for {
			v, ok := values.Next()
			if !ok {
				break
			}
			n, ok := parseCount(v)
			if !ok {
				return fmt.Errorf("%s: key %q: value %q is not a count", app, key, v)
			}
			if sum+n < sum {
				return fmt.Errorf("%s: key %q: count overflows", app, key)
			}
			sum += n
		}
		var num [20]byte
		return emit(key, strconv.AppendUint(num[:0], sum, 10))
	}
}
