// Command wordlen is a MapReduce program written against the Go API: it
// counts words by length. Built once, the same binary is the coordinator,
// a worker and the submitter (mapreduce.Main):
//
//	wordlen coordinator -addr :7070 -master M -dir /var/lib/wordlen/coord -tls-dir T
//	wordlen worker -coordinator C:7070 -master M -dir /var/lib/wordlen/w -chunkserver CS:PORT -tls-dir T
//	wordlen run -coordinator C:7070 -app wordlen -in /books -out /stats/wordlen
//
// Output lines are "LENGTH\tCOUNT", LENGTH zero-padded to 3 digits so the
// byte order of keys is numeric order.
package main

import (
	"context"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/gfs-go/gfs/mapreduce"
)

func main() {
	mapreduce.Main(mapreduce.Apps{"wordlen": WordLen})
}

// WordLen builds the job: map emits (length, 1) per word, combine and
// reduce sum.
func WordLen(conf mapreduce.Config) (*mapreduce.Job, error) {
	return &mapreduce.Job{Map: mapWords, Combine: sum, Reduce: sum}, nil
}

func mapWords(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		key := fmt.Appendf(nil, "%03d", min(n, 999))
		n = 0
		return emit(key, []byte("1"))
	}
	for b := rec.Data; len(b) > 0; {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if unicode.IsLetter(r) {
			n++
			continue
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return flush()
}

func sum(ctx context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
	total := 0
	for v, ok := values.Next(); ok; v, ok = values.Next() {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("value %q: %w", v, err)
		}
		total += n
	}
	return emit(key, []byte(strconv.Itoa(total)))
}
