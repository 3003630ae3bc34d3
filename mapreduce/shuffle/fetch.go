package shuffle

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Fetch fetches partition part of attempt attempt of map mapIndex of job
// from the shuffle server at baseURL ("https://host:port") into the local
// file dst, checking every block checksum and the segment's end marker as
// the bytes stream in, then the whole segment's checksum the server sent.
// It returns the bytes fetched. A damaged or short segment is an error
// wrapping ErrCorrupt, an output the server does not have one wrapping
// ErrNotFound; on any error dst is removed. Deadlines come from ctx.
func Fetch(ctx context.Context, c *http.Client, baseURL, job string, mapIndex, attempt, part int, dst string) (n int64, err error) {
	q := url.Values{}
	q.Set("job", job)
	q.Set("map", strconv.Itoa(mapIndex))
	q.Set("attempt", strconv.Itoa(attempt))
	q.Set("part", strconv.Itoa(part))
	u := strings.TrimSuffix(baseURL, "/") + ShufflePath + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("shuffle: fetch: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("shuffle: fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		err := fmt.Errorf("shuffle: fetch %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", err, ErrNotFound)
		}
		return 0, err
	}
	wantSum, err := strconv.ParseUint(resp.Header.Get(headerChecksum), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("shuffle: fetch %s: bad or missing %s header: %w", u, headerChecksum, ErrCorrupt)
	}

	f, err := os.Create(dst)
	if err != nil {
		return 0, fmt.Errorf("shuffle: fetch: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("shuffle: fetch into %s: %w", dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
			n = 0
		}
	}()
	return copySegment(f, resp.Body, u, wantSum)
}

// copySegment copies one segment from body to f, verifying it. It reads
// exactly up to the end marker, then insists on the end of the body.
func copySegment(f *os.File, body io.Reader, name string, wantSum uint64) (int64, error) {
	bw := bufio.NewWriterSize(f, 256<<10)
	cw := &countingWriter{w: bw}
	cw.sum.Reset() // the zero Digest is not a valid start state
	var br blockReader
	br.reset(io.TeeReader(body, cw), name)
	for {
		_, err := br.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if cw.err != nil {
				return 0, fmt.Errorf("shuffle: fetch into %s: %w", f.Name(), cw.err)
			}
			return 0, fmt.Errorf("shuffle: fetch: %w", err)
		}
	}
	if cw.err != nil {
		return 0, fmt.Errorf("shuffle: fetch into %s: %w", f.Name(), cw.err)
	}
	var extra [1]byte
	if k, err := body.Read(extra[:]); k > 0 || (err != nil && err != io.EOF) {
		if k == 0 {
			return 0, fmt.Errorf("shuffle: fetch %s: after end marker: %w", name, err)
		}
		return 0, fmt.Errorf("shuffle: fetch %s: bytes after the end marker: %w", name, ErrCorrupt)
	}
	if got := cw.sum.Sum64(); got != wantSum {
		return 0, fmt.Errorf("shuffle: fetch %s: segment checksum %x, server said %x: %w", name, got, wantSum, ErrCorrupt)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("shuffle: fetch into %s: %w", f.Name(), err)
	}
	return cw.n, nil
}

// countingWriter writes through, counting and hashing; it keeps the first
// error so a full local disk is not mistaken for a bad segment.
type countingWriter struct {
	w   io.Writer
	n   int64
	sum xxhash.Digest
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	k, err := c.w.Write(p)
	c.n += int64(k)
	c.sum.Write(p[:k])
	if err != nil {
		c.err = err
	}
	return k, err
}
