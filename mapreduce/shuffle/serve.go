package shuffle

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

// ShufflePath is the URL path the handler serves.
const ShufflePath = "/mr/shuffle"

// Response headers describing the segment, checked by Fetch.
const (
	headerChecksum = "Gfs-Segment-Xxhash64" // hex xxhash64 of the body
	headerRecords  = "Gfs-Segment-Records"
)

// Locator finds the directory of a finished map attempt's output; ok false
// when the worker has no such attempt (never ran it, dropped it).
type Locator func(job string, mapIndex, attempt int) (dir string, ok bool)

// NewHandler serves map outputs:
//
//	GET /mr/shuffle?job=J&map=M&attempt=A&part=P
//
// answers partition P's segment of the output of attempt A of map M of job
// J, 200 with the bytes; 400 for a malformed query or a partition out of
// range; 404 for an output the Locator does not know or that is not
// complete yet; 405 for another method. log gets server-side failures
// (nil: discarded).
func NewHandler(loc Locator, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{loc: loc, log: log}
}

type handler struct {
	loc Locator
	log *slog.Logger
}

type segmentRequest struct {
	job               string
	mapIndex, attempt int
	part              int
}

func parseSegmentRequest(q url.Values) (segmentRequest, error) {
	var r segmentRequest
	r.job = q.Get("job")
	if r.job == "" {
		return r, errors.New("missing job")
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"map", &r.mapIndex}, {"attempt", &r.attempt}, {"part", &r.part}} {
		s := q.Get(f.name)
		if s == "" {
			return r, fmt.Errorf("missing %s", f.name)
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return r, fmt.Errorf("bad %s %q: want a non-negative integer", f.name, s)
		}
		*f.dst = n
	}
	return r, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != ShufflePath {
		http.Error(w, "shuffle: no such path "+r.URL.Path, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "shuffle: method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := parseSegmentRequest(r.URL.Query())
	if err != nil {
		http.Error(w, "shuffle: "+err.Error(), http.StatusBadRequest)
		return
	}
	dir, ok := h.loc(req.job, req.mapIndex, req.attempt)
	if !ok {
		http.Error(w, fmt.Sprintf("shuffle: unknown map output: job %q map %d attempt %d", req.job, req.mapIndex, req.attempt), http.StatusNotFound)
		return
	}
	exts, err := ReadIndex(dir)
	if errors.Is(err, ErrNotFound) {
		http.Error(w, fmt.Sprintf("shuffle: map output not complete: job %q map %d attempt %d", req.job, req.mapIndex, req.attempt), http.StatusNotFound)
		return
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	if req.part >= len(exts) {
		http.Error(w, fmt.Sprintf("shuffle: partition %d out of range: map output has %d", req.part, len(exts)), http.StatusBadRequest)
		return
	}
	ext := exts[req.part]
	f, err := os.Open(filepath.Join(dir, OutputName))
	if err != nil {
		h.fail(w, req, err)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() < ext.Offset+ext.Length {
		h.fail(w, req, fmt.Errorf("output file shorter than its index (%v): %w", err, ErrCorrupt))
		return
	}
	if _, err := f.Seek(ext.Offset, io.SeekStart); err != nil {
		h.fail(w, req, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Length", strconv.FormatInt(ext.Length, 10))
	hd.Set(headerChecksum, strconv.FormatUint(ext.Checksum, 16))
	hd.Set(headerRecords, strconv.FormatInt(ext.Records, 10))
	w.WriteHeader(http.StatusOK)
	// io.CopyN hands the response an io.LimitedReader over the *os.File,
	// which net/http passes to the TCP connection's ReadFrom: sendfile.
	if n, err := io.CopyN(w, f, ext.Length); err != nil {
		// Headers are out: the client sees a short body, which Fetch
		// reports as truncated.
		h.log.Warn("shuffle: segment send failed", "job", req.job, "map", req.mapIndex, "attempt", req.attempt,
			"part", req.part, "sent", n, "of", ext.Length, "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, req segmentRequest, err error) {
	h.log.Error("shuffle: cannot serve map output", "job", req.job, "map", req.mapIndex, "attempt", req.attempt, "part", req.part, "err", err)
	http.Error(w, "shuffle: cannot serve map output: "+err.Error(), http.StatusInternalServerError)
}
