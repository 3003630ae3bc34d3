package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
)

// ChunkLocation is where one chunk of a file lives.
type ChunkLocation struct {
	Index    int64    `json:"index"`
	Handle   uint64   `json:"handle"`
	Version  uint64   `json:"version"`
	Replicas []string `json:"replicas"` // up-to-date replicas, HOST:PORT
	Primary  string   `json:"primary"`  // empty when no lease is held
	Length   int64    `json:"length"`   // master's best known length
	// Corrupt lists replicas (among Replicas) the master knows bad and
	// keeps only as the chunk's last live copy: reads try them last.
	Corrupt []string `json:"corrupt,omitempty"`
	// LeaseExpiry is the master's view of the primary's lease end (zero
	// without a lease).
	LeaseExpiry time.Time `json:"-"`
	// Capability is the master-signed token the chunkservers ask for
	// (dataplane/capability): read access, plus write and append when the
	// location came from a lookup for writing. A bearer secret: never
	// printed.
	Capability capability.Token `json:"-"`
}

// dataContext returns ctx carrying loc's capability for the data client.
func dataContext(ctx context.Context, loc ChunkLocation) context.Context {
	if len(loc.Capability) == 0 {
		return ctx
	}
	return capability.NewContext(ctx, loc.Capability)
}

// mayMutate reports whether loc's capability allows writes and appends (a
// location cached from a read lookup does not; without capabilities in
// use, anything goes).
func mayMutate(loc ChunkLocation) bool {
	if len(loc.Capability) == 0 {
		return true
	}
	c, err := capability.Decode(loc.Capability)
	return err == nil && c.Ops&(capability.OpWrite|capability.OpAppend) == capability.OpWrite|capability.OpAppend &&
		time.Until(c.Expiry) > leaseMargin
}

func locationFrom(pb *controlpb.ChunkLocation) ChunkLocation {
	l := ChunkLocation{
		Index:    pb.GetIndex(),
		Handle:   pb.GetHandle(),
		Version:  pb.GetVersion(),
		Replicas: append([]string(nil), pb.GetReplicas()...),
		Primary:  pb.GetPrimary(),
		Length:   pb.GetLength(),
		Corrupt:  append([]string(nil), pb.GetCorrupt()...),
	}
	if tok := pb.GetCapability(); len(tok) > 0 {
		l.Capability = append([]byte(nil), tok...)
	}
	if ms := pb.GetLeaseExpiryUnixMs(); ms != 0 {
		l.LeaseExpiry = time.UnixMilli(ms)
	}
	if l.Replicas == nil {
		l.Replicas = []string{}
	}
	return l
}

// fileLocations is the cached view of one file's chunks.
type fileLocations struct {
	chunks     map[int64]cachedLocation
	fileChunks int64 // number of chunks in the file at the last Lookup
	appendIdx  int64 // chunk the last successful record append went to
}

type cachedLocation struct {
	loc     ChunkLocation
	fetched time.Time
}

// leaseMargin is how long before the master's lease expiry a cached primary
// stops being trusted.
const leaseMargin = time.Second

// maxCachedFiles bounds the number of files whose locations are cached.
const maxCachedFiles = 4096

// lookupBatch is how many chunk locations a read lookup prefetches.
const lookupBatch = 16

// errPastEnd means the chunk index lies past the file's last chunk.
var errPastEnd = errors.New("past the end of the file")

// lookup asks the master for count chunks of path from first and caches the
// answer. It returns the response's locations.
func (c *Client) lookup(ctx context.Context, path string, first, count int64, forWrite, allocate bool) ([]ChunkLocation, int64, error) {
	if err := c.checkOpen(); err != nil {
		return nil, 0, err
	}
	req := &controlpb.LookupRequest{Path: path, FirstIndex: first, Count: count, ForWrite: forWrite, Allocate: allocate}
	var resp *controlpb.LookupResponse
	err := c.callMaster(ctx, idempotent, func(ctx context.Context) (err error) {
		resp, err = c.master.Lookup(ctx, req)
		return err
	})
	if err != nil {
		return nil, 0, controlError("lookup", path, err)
	}
	if cs := resp.GetChunkSize(); cs > 0 {
		c.chunkSize.Store(cs)
	}
	now := time.Now()
	locs := make([]ChunkLocation, 0, len(resp.GetChunks()))
	c.mu.Lock()
	fl := c.files[path]
	if fl == nil {
		if len(c.files) >= maxCachedFiles {
			// Bound the cache: drop some file (map order is random enough).
			for p := range c.files {
				delete(c.files, p)
				break
			}
		}
		fl = &fileLocations{chunks: make(map[int64]cachedLocation), appendIdx: -1}
		c.files[path] = fl
	}
	fl.fileChunks = resp.GetFileChunks()
	for _, pb := range resp.GetChunks() {
		l := locationFrom(pb)
		fl.chunks[l.Index] = cachedLocation{loc: l, fetched: now}
		locs = append(locs, l)
	}
	c.mu.Unlock()
	return locs, resp.GetFileChunks(), nil
}

// ChunkSize returns the cluster's maximum chunk size, as the master says in
// a lookup of path (which must exist): a file's chunk i holds bytes
// [i*ChunkSize, (i+1)*ChunkSize). MapReduce cuts its input splits there.
func (c *Client) ChunkSize(ctx context.Context, path string) (int64, error) {
	return c.chunkSizeOf(ctx, path)
}

// chunkSizeOf returns the cluster's chunk size, asking the master on first
// use (through a Lookup of path).
func (c *Client) chunkSizeOf(ctx context.Context, path string) (int64, error) {
	if cs := c.chunkSize.Load(); cs > 0 {
		return cs, nil
	}
	if _, _, err := c.lookup(ctx, path, 0, 1, false, false); err != nil {
		return 0, err
	}
	cs := c.chunkSize.Load()
	if cs <= 0 {
		return 0, fmt.Errorf("lookup %s: master did not say its chunk size", path)
	}
	return cs, nil
}

// locate returns chunk idx of path. For reads a cached location younger
// than LocationTTL is used; for writes only one with a primary whose lease
// has more than leaseMargin left. allocate creates the chunk (and any
// missing ones before it). It returns errPastEnd when the chunk does not
// exist and allocate is false.
func (c *Client) locate(ctx context.Context, path string, idx int64, forWrite, allocate bool) (ChunkLocation, error) {
	now := time.Now()
	c.mu.Lock()
	if fl := c.files[path]; fl != nil {
		if cl, ok := fl.chunks[idx]; ok && now.Sub(cl.fetched) < c.opts.LocationTTL {
			if !forWrite || (cl.loc.Primary != "" && cl.loc.LeaseExpiry.After(now.Add(leaseMargin)) && mayMutate(cl.loc)) {
				c.mu.Unlock()
				return cl.loc, nil
			}
		}
	}
	c.mu.Unlock()
	count := int64(1)
	if !forWrite {
		count = lookupBatch
	}
	locs, _, err := c.lookup(ctx, path, idx, count, forWrite, allocate)
	if err != nil {
		return ChunkLocation{}, err
	}
	for _, l := range locs {
		if l.Index == idx {
			return l, nil
		}
	}
	return ChunkLocation{}, errPastEnd
}

// invalidate drops the cached location of chunk idx of path.
func (c *Client) invalidate(path string, idx int64) {
	c.mu.Lock()
	if fl := c.files[path]; fl != nil {
		delete(fl.chunks, idx)
	}
	c.mu.Unlock()
}

// forget drops everything cached about path.
func (c *Client) forget(path string) {
	c.mu.Lock()
	delete(c.files, path)
	c.mu.Unlock()
}

// cachedFileChunks returns the chunk count of path seen at the last lookup.
func (c *Client) cachedFileChunks(path string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl := c.files[path]; fl != nil {
		return fl.fileChunks, true
	}
	return 0, false
}

// orderReplicas returns replicas nearest first: those on this host, then
// the others. Within a distance the order rotates with the chunk handle so
// that readers of different chunks spread over the replicas.
func (c *Client) orderReplicas(replicas []string, handle uint64) []string {
	n := len(replicas)
	out := make([]string, n)
	for i := range replicas {
		out[i] = replicas[(i+int(handle%uint64(max(n, 1))))%n]
	}
	sort.SliceStable(out, func(i, j int) bool { return c.distance(out[i]) < c.distance(out[j]) })
	return out
}

// readOrder is the order reads try loc's replicas in: orderReplicas, with
// the replicas the master marks corrupt (kept as the last live copy) moved
// last, so they are read only when no other replica answers.
func (c *Client) readOrder(loc ChunkLocation, spread uint64) []string {
	out := c.orderReplicas(loc.Replicas, spread)
	if len(loc.Corrupt) > 0 {
		sort.SliceStable(out, func(i, j int) bool {
			return !slices.Contains(loc.Corrupt, out[i]) && slices.Contains(loc.Corrupt, out[j])
		})
	}
	return out
}

// distance is 0 for an address on this host and 1 otherwise (racks are not
// known to clients).
func (c *Client) distance(addr string) int {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 1
	}
	if c.local[host] {
		return 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return 0
	}
	return 1
}

// backoff is the retry pacing of reads and mutations.
type backoff struct {
	deadline time.Time
	wait     time.Duration
}

func (c *Client) newBackoff() *backoff {
	return &backoff{deadline: time.Now().Add(c.opts.RetryTimeout), wait: 20 * time.Millisecond}
}

// sleep waits before the next attempt. It returns false when the retry
// budget or ctx is exhausted.
func (b *backoff) sleep(ctx context.Context) bool {
	if time.Now().Add(b.wait).After(b.deadline) {
		return false
	}
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.wait = min(b.wait*2, time.Second)
	return true
}
