package apps

import (
	"context"
	"slices"
	"strconv"

	"github.com/gfs-go/gfs/mapreduce"
)

// Index builds the inverted index job (paper section 2.3): for every word
// (as in WordCount), "N path1,path2,..." naming the N input files that
// hold it, sorted and without duplicates. The map emits (word, path) per
// occurrence; the combiner keeps each distinct path once, so a map task
// ships at most one pair per word and file.
func Index(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	return &mapreduce.Job{
		Input: in,
		Map: func(_ context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			path := []byte(rec.Path)
			return eachWord(rec.Data, func(w []byte) error { return emit(w, path) })
		},
		Combine: func(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
			for _, p := range distinctSorted(values) {
				if err := emit(key, []byte(p)); err != nil {
					return err
				}
			}
			return nil
		},
		Reduce: func(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
			paths := distinctSorted(values)
			out := strconv.AppendInt(nil, int64(len(paths)), 10)
			for i, p := range paths {
				if i == 0 {
					out = append(out, ' ')
				} else {
					out = append(out, ',')
				}
				out = append(out, p...)
			}
			return emit(key, out)
		},
	}, nil
}

// distinctSorted returns the distinct values, sorted. A key has at most one
// value per input file after combining, so this is bounded by the number
// of input files, not of occurrences.
func distinctSorted(values mapreduce.Values) []string {
	set := make(map[string]struct{})
	for {
		v, ok := values.Next()
		if !ok {
			break
		}
		if _, ok := set[string(v)]; !ok { // no allocation for a known path
			set[string(v)] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
