package apps

import (
	"context"

	"github.com/gfs-go/gfs/mapreduce"
)

// WordCount builds the wordcount job (paper section 2.1): every word of the
// input with its number of occurrences. A word is a maximal run of Unicode
// letters (unicode.IsLetter), case kept; the combiner is the reducer.
func WordCount(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	one := []byte("1")
	sum := sumCounts("wordcount")
	return &mapreduce.Job{
		Input: in,
		Map: func(_ context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			return eachWord(rec.Data, func(w []byte) error { return emit(w, one) })
		},
		Combine: sum,
		Reduce:  sum,
	}, nil
}
