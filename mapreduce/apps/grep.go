package apps

import (
	"context"
	"fmt"
	"regexp"

	"github.com/gfs-go/gfs/mapreduce"
)

// Grep builds the grep job (paper section 2.3, distributed grep): every
// input line matching the Go regexp conf["pattern"], with the number of
// times it occurs.
func Grep(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	pattern, ok := conf[ConfPattern]
	if !ok || pattern == "" {
		return nil, fmt.Errorf("%w: grep needs a %s", ErrBadConfig, ConfPattern)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: grep %s: %v", ErrBadConfig, ConfPattern, err)
	}
	one := []byte("1")
	sum := sumCounts("grep")
	return &mapreduce.Job{
		Input: in,
		Map: func(_ context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			if re.Match(rec.Data) { // a *Regexp is safe for concurrent use
				return emit(rec.Data, one)
			}
			return nil
		},
		Combine: sum,
		Reduce:  sum,
	}, nil
}
