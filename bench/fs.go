package bench

import (
	"context"
	"io"
)

// FS is what the workloads need of a GFS client. ClientFS adapts package
// client; tests use an in-memory FS to check the harness itself.
type FS interface {
	// Create creates an empty file (an error if it exists).
	Create(ctx context.Context, path string) error
	// Mkdir creates a directory and its parents (no error if it exists).
	Mkdir(ctx context.Context, path string) error
	// Open opens an existing file for reading and writing.
	Open(ctx context.Context, path string) (File, error)
	// RecordAppend appends rec as one record at an offset the system picks.
	RecordAppend(ctx context.Context, path string, rec []byte) error
	// NewRecordWriter returns a writer that pipelines record appends to
	// path with up to window records in flight.
	NewRecordWriter(ctx context.Context, path string, window int) (RecordWriter, error)
	// ReadRecords calls fn with every record of a record-appended file, in
	// file order, through the client's record reader (padding and torn
	// fragments skipped; duplicates from retries may appear).
	ReadRecords(ctx context.Context, path string, fn func(rec []byte) error) error
	// Stat returns the file's size as the master knows it (one metadata call).
	Stat(ctx context.Context, path string) (size int64, err error)
	// List returns the names in a directory.
	List(ctx context.Context, dir string) ([]string, error)
	// Delete removes a file, or a directory and everything in it.
	Delete(ctx context.Context, path string) error
	// Close releases the client.
	Close() error
}

// File is an open file.
type File interface {
	// WriteAt writes all of p at off.
	WriteAt(ctx context.Context, p []byte, off int64) error
	// ReadAt reads len(p) bytes at off; n < len(p) only with an error (io.EOF
	// at the end of the file).
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// NewReader streams the file from its start (with readahead); the caller
	// closes it.
	NewReader(ctx context.Context) io.ReadCloser
	// Length returns the file's current length as its chunks report it.
	Length(ctx context.Context) (int64, error)
	// Close releases the file.
	Close() error
}

// RecordWriter pipelines record appends to one file (client.RecordWriter).
type RecordWriter interface {
	// Append sends rec (reusable on return), waiting while the window is full.
	Append(rec []byte) error
	// InFlight is the number of records sent and not yet acknowledged.
	InFlight() int
	// Close waits until every record was acknowledged.
	Close() error
}
