package apps

import (
	"context"

	"github.com/gfs-go/gfs/mapreduce"
)

// Identity builds the identity job: every input line once per occurrence,
// sorted within each (hash) partition.
func Identity(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	return &mapreduce.Job{
		Input:  in,
		Map:    mapLineAsKey,
		Reduce: reduceKeyPerValue,
	}, nil
}

// mapLineAsKey emits the record as a key with an empty value.
func mapLineAsKey(_ context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
	return emit(rec.Data, nil)
}

// reduceKeyPerValue emits the key alone once for each of its values, so
// duplicated input lines stay duplicated.
func reduceKeyPerValue(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
	for {
		if _, ok := values.Next(); !ok {
			return nil
		}
		if err := emit(key, nil); err != nil {
			return err
		}
	}
}
