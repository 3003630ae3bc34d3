package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/chunkserver"
	"github.com/gfs-go/gfs/internal/dirlock"
	"github.com/gfs-go/gfs/master"
)

// Options describes a cluster. Zero values mean the documented defaults;
// the timers default to the master's and chunkservers' own defaults.
type Options struct {
	// Dir is the root directory (required). See the package doc for its layout.
	Dir string
	// Chunkservers is the number of chunkservers; 0 = 3.
	Chunkservers int
	// MasterAddr is the master's listen address; "" = 127.0.0.1 on the port
	// used last time in Dir, or any free port.
	MasterAddr string
	// ChunkSize is the maximum chunk size; 0 = the master's default (64 MiB).
	ChunkSize int64
	// Replication is the default replica count; 0 = min(3, Chunkservers).
	Replication int
	// LeaseTTL, HeartbeatInterval, DeadAfter, GCGrace: see master.Options.
	LeaseTTL          time.Duration
	HeartbeatInterval time.Duration
	DeadAfter         time.Duration
	GCGrace           time.Duration
	// ReadyTimeout bounds the wait for every chunkserver to register; 0 = 30 s.
	ReadyTimeout time.Duration
	// Logger receives the servers' logs (with "node" attributes); nil discards.
	Logger *slog.Logger
	// Chunkserver is a template for every chunkserver's options
	// (MasterAddr, Addr, Dir and TLS are filled in per server).
	Chunkserver chunkserver.Options
	// TLSDir turns on mutual TLS on the control channel: the directory
	// holds a CA and node certificates as gfs cert writes them (master.pem,
	// csI.pem for chunkserver I, client.pem); missing ones are created
	// there (with a CA when it has none). "" = plaintext.
	TLSDir string
	// DataTLS makes every chunkserver require TLS on the data channel
	// (chunkserver.Options.DataTLS); needs TLSDir. Clients then need
	// client.Options.DataTLS.
	DataTLS bool
}

// Cluster is a running in-process cluster.
type Cluster struct {
	opts Options
	log  *slog.Logger
	lock *dirlock.Lock // Options.Dir, held until Close

	clientTLS  *tls.Config // nil without TLSDir
	master     *master.Master
	masterLis  net.Listener
	masterAddr string
	masterDone chan error

	mu  sync.Mutex
	css []*node // guarded by mu
}

// node is one chunkserver slot.
type node struct {
	dir    string
	addr   string // fixed after the first start
	srv    *chunkserver.Server
	cancel context.CancelFunc
	done   chan error
}

// addrsFile records the addresses picked at first start.
type addrsFile struct {
	Master       string   `json:"master"`
	Chunkservers []string `json:"chunkservers"`
}

// Start starts a master and the chunkservers and returns once enough
// chunkservers registered for a chunk to be allocated with the target
// replication. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("cluster: Options.Dir is required")
	}
	if opts.Chunkservers < 0 || opts.Replication < 0 || opts.ChunkSize < 0 {
		return nil, errors.New("cluster: negative Chunkservers, Replication or ChunkSize")
	}
	if opts.Chunkservers == 0 {
		opts.Chunkservers = 3
	}
	if opts.Replication == 0 {
		opts.Replication = min(3, opts.Chunkservers)
	}
	if opts.Replication > opts.Chunkservers {
		return nil, fmt.Errorf("cluster: replication %d > %d chunkservers", opts.Replication, opts.Chunkservers)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The whole tree is this cluster's until Close (the master and each
	// chunkserver lock their own directories inside it too).
	lock, err := dirlock.Acquire(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	prev := readAddrs(opts.Dir)

	if opts.DataTLS && opts.TLSDir == "" {
		lock.Release()
		return nil, errors.New("cluster: DataTLS needs TLSDir")
	}
	c := &Cluster{opts: opts, log: opts.Logger, lock: lock}
	if opts.TLSDir != "" {
		if err := ensureCerts(opts.TLSDir, opts.Chunkservers); err != nil {
			lock.Release()
			return nil, err
		}
		if c.clientTLS, err = tlsconfig.Client(c.TLSFiles("client")); err != nil {
			lock.Release()
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := c.startMaster(prev.Master); err != nil {
		lock.Release()
		return nil, err
	}
	for i := 0; i < opts.Chunkservers; i++ {
		n := &node{dir: filepath.Join(opts.Dir, fmt.Sprintf("cs%d", i))}
		if i < len(prev.Chunkservers) {
			n.addr = prev.Chunkservers[i]
		}
		c.css = append(c.css, n)
		if err := c.startNode(i, n); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.writeAddrs(); err != nil {
		c.Close()
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	if err := c.waitReady(rctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: not ready: %w", err)
	}
	return c, nil
}

func (c *Cluster) startMaster(prevAddr string) error {
	m, err := master.New(master.Options{
		Dir:               filepath.Join(c.opts.Dir, "master"),
		ChunkSize:         c.opts.ChunkSize,
		Replication:       c.opts.Replication,
		LeaseTTL:          c.opts.LeaseTTL,
		HeartbeatInterval: c.opts.HeartbeatInterval,
		DeadAfter:         c.opts.DeadAfter,
		GCGrace:           c.opts.GCGrace,
		TLS:               c.TLSFiles("master"),
		Logger:            c.log.With("node", "master"),
	})
	if err != nil {
		return fmt.Errorf("cluster: master: %w", err)
	}
	addr := c.opts.MasterAddr
	var lis net.Listener
	if (addr == "" || strings.HasSuffix(addr, ":0")) && prevAddr != "" {
		lis, err = net.Listen("tcp", prevAddr)
		if err != nil {
			lis = nil // port taken since: pick another
		}
	}
	if lis == nil {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		lis, err = net.Listen("tcp", addr)
		if err != nil {
			m.Close()
			return fmt.Errorf("cluster: master listen: %w", err)
		}
	}
	c.master, c.masterLis, c.masterAddr = m, lis, lis.Addr().String()
	c.masterDone = make(chan error, 1)
	go func() { c.masterDone <- m.Serve(lis) }()
	return nil
}

// startNode starts chunkserver i on its fixed address (or a free port the
// first time).
func (c *Cluster) startNode(i int, n *node) error {
	o := c.opts.Chunkserver
	o.MasterAddr = c.masterAddr
	o.Dir = n.dir
	o.Addr = n.addr
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = c.opts.HeartbeatInterval
	}
	if o.Store.ChunkSize == 0 {
		o.Store.ChunkSize = c.opts.ChunkSize
	}
	o.Logger = c.log.With("node", fmt.Sprintf("cs%d", i))
	o.TLS = c.TLSFiles(fmt.Sprintf("cs%d", i))
	o.DataTLS = o.DataTLS || c.opts.DataTLS
	srv, err := chunkserver.New(o)
	if err != nil && n.addr != "" && o.Addr == n.addr {
		// The old port is taken: come back elsewhere (the master learns
		// the new address from the registration).
		o.Addr = "127.0.0.1:0"
		srv, err = chunkserver.New(o)
	}
	if err != nil {
		return fmt.Errorf("cluster: chunkserver %d: %w", i, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.srv, n.cancel, n.addr = srv, cancel, srv.Addr()
	n.done = make(chan error, 1)
	go func() { n.done <- srv.Serve(ctx) }()
	return nil
}

// stopNode stops a running chunkserver and waits for it.
func stopNode(n *node) error {
	if n.srv == nil {
		return nil
	}
	n.cancel()
	err := n.srv.Close()
	serr := <-n.done
	n.srv = nil
	if serr != nil && !errors.Is(serr, context.Canceled) {
		err = errors.Join(err, serr)
	}
	return err
}

// waitReady allocates a probe chunk until the master hands out one with the
// target replication, proving that the chunkservers registered; the probe
// file is deleted afterwards.
func (c *Cluster) waitReady(ctx context.Context) error {
	cc, err := control.Dial(c.masterAddr, control.DialOptions{CallTimeout: 2 * time.Second, TLS: c.clientTLS})
	if err != nil {
		return err
	}
	defer cc.Close()
	mc := controlpb.NewMasterClient(cc)
	var b [6]byte
	_, _ = rand.Read(b[:])
	probe := "/.cluster-ready-" + hex.EncodeToString(b[:])
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = mc.Delete(dctx, &controlpb.DeleteRequest{Path: probe})
	}()
	var last error
	for {
		last = c.probe(ctx, mc, probe)
		if last == nil {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (c *Cluster) probe(ctx context.Context, mc controlpb.MasterClient, path string) error {
	if _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: path}); err != nil && control.Code(err) != controlpb.ErrorCode_ERROR_CODE_EXISTS {
		return err
	}
	// Not for_write: a master that just started refuses leases until any
	// lease granted before it started surely expired; clients wait for
	// that themselves (TRY_AGAIN), the cluster serves before.
	resp, err := mc.Lookup(ctx, &controlpb.LookupRequest{Path: path, FirstIndex: 0, Count: 1, Allocate: true})
	if err != nil {
		return err
	}
	if len(resp.GetChunks()) == 1 && len(resp.GetChunks()[0].GetReplicas()) >= c.opts.Replication {
		return nil
	}
	// Allocated with too few replicas (servers still registering): start
	// over with a fresh chunk.
	_, _ = mc.Delete(ctx, &controlpb.DeleteRequest{Path: path})
	return fmt.Errorf("probe chunk got %d replicas, want %d", len(resp.GetChunks()), c.opts.Replication)
}

// ensureCerts makes dir hold valid certificates for a cluster of n
// chunkservers: missing or expiring ones are created with dir's CA (a CA
// when dir has none); a CA is never replaced (tlsconfig.EnsureCerts).
func ensureCerts(dir string, n int) error {
	// coordinator and worker certificates let gfs local -mr-workers (and
	// tests) run MapReduce on the cluster without another gfs cert step.
	names := []string{"master", "client", "coordinator", "worker"}
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("cs%d", i))
	}
	var nodes []tlsconfig.Node
	for _, name := range names {
		nn, err := tlsconfig.ParseNodes(name)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		nodes = append(nodes, nn...)
	}
	if _, err := tlsconfig.EnsureCerts(dir, nodes, nil); err != nil {
		return fmt.Errorf("cluster: certificates: %w", err)
	}
	return nil
}

// TLSFiles returns the certificate files of node ("master", "csI",
// "client") in Options.TLSDir; zero without TLS.
func (c *Cluster) TLSFiles(node string) tlsconfig.Files {
	if c.opts.TLSDir == "" {
		return tlsconfig.Files{}
	}
	return tlsconfig.FilesInDir(c.opts.TLSDir, node)
}

// ClientTLS returns the control-channel configuration of a client of the
// cluster (client.pem), nil without TLS.
func (c *Cluster) ClientTLS() *tls.Config { return c.clientTLS }

// MasterAddr returns the master's HOST:PORT.
func (c *Cluster) MasterAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.masterAddr
}

// ChunkserverAddrs returns the chunkservers' HOST:PORT, by index.
func (c *Cluster) ChunkserverAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.css))
	for i, n := range c.css {
		out[i] = n.addr
	}
	return out
}

// Master returns the in-process master (tests inspect it), nil while it
// is stopped.
func (c *Cluster) Master() *master.Master {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.master
}

// Chunkserver returns chunkserver i, or nil while it is stopped.
func (c *Cluster) Chunkserver(i int) *chunkserver.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.css) {
		return nil
	}
	return c.css[i].srv
}

// StopChunkserver stops chunkserver i (as a clean shutdown; its data stays
// in its directory).
func (c *Cluster) StopChunkserver(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.css) {
		return fmt.Errorf("cluster: no chunkserver %d", i)
	}
	return stopNode(c.css[i])
}

// RestartChunkserver starts chunkserver i again on its directory and
// address (stopping it first if it runs).
func (c *Cluster) RestartChunkserver(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.css) {
		return fmt.Errorf("cluster: no chunkserver %d", i)
	}
	if err := stopNode(c.css[i]); err != nil {
		return err
	}
	return c.startNode(i, c.css[i])
}

// StopMaster stops the master (its op log stays in its directory); the
// chunkservers keep running and reconnect when it comes back.
func (c *Cluster) StopMaster() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopMasterLocked()
}

// RestartMaster starts the master again on its directory and address
// (stopping it first if it runs). It recovers from its op log and learns
// chunk locations from the chunkservers' reports, as after a crash.
func (c *Cluster) RestartMaster() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopMasterLocked(); err != nil {
		return err
	}
	old := c.masterAddr
	if err := c.startMaster(old); err != nil {
		return err
	}
	if c.masterAddr != old {
		// The chunkservers only know the old address.
		err := fmt.Errorf("cluster: master came back on %s, not %s", c.masterAddr, old)
		return errors.Join(err, c.stopMasterLocked())
	}
	return nil
}

func (c *Cluster) stopMasterLocked() error {
	if c.master == nil {
		return nil
	}
	var errs []error
	if err := c.master.Close(); err != nil {
		errs = append(errs, fmt.Errorf("master: %w", err))
	}
	c.masterLis.Close()
	if err := <-c.masterDone; err != nil && !isClosedErr(err) {
		errs = append(errs, fmt.Errorf("master serve: %w", err))
	}
	c.master = nil
	return errors.Join(errs...)
}

// Close stops the chunkservers and the master and waits for all of them.
func (c *Cluster) Close() error {
	c.mu.Lock()
	var errs []error
	for i, n := range c.css {
		if err := stopNode(n); err != nil {
			errs = append(errs, fmt.Errorf("chunkserver %d: %w", i, err))
		}
	}
	if err := c.stopMasterLocked(); err != nil {
		errs = append(errs, err)
	}
	if err := c.lock.Release(); err != nil {
		errs = append(errs, err)
	}
	c.mu.Unlock()
	return errors.Join(errs...)
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, master.ErrClosed)
}

func readAddrs(dir string) addrsFile {
	var a addrsFile
	b, err := os.ReadFile(filepath.Join(dir, "addrs.json"))
	if err == nil {
		_ = json.Unmarshal(b, &a)
	}
	return a
}

func (c *Cluster) writeAddrs() error {
	a := addrsFile{Master: c.masterAddr, Chunkservers: c.ChunkserverAddrs()}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.opts.Dir, "addrs.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.opts.Dir, "addrs.json"))
}
