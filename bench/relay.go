package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// relayBufBytes is the relay's packet size; relayBuffers is how many packets
// one stream has in flight inside a node (read, forwarded and written in a
// pipeline rather than one after the other).
const (
	relayBufBytes = 1 << 20
	relayBuffers  = 4
)

// RelayNodeOptions configures one hop of the raw relay baseline.
type RelayNodeOptions struct {
	// Addr is the listen address; "" = 127.0.0.1:0.
	Addr string
	// Dir receives one file per stream, written with O_DIRECT and removed when
	// the stream ends. Required.
	Dir string
	// Next is the next hop's address; "" = this is the last hop.
	Next   string
	Logger *slog.Logger // nil = discard
}

// RelayNode is one hop of the raw relay baseline: for every connection it
// writes what it receives to a file with O_DIRECT and forwards it to Next, in
// a pipeline of relayBuffers packets. When the upstream half-closes, it waits
// for its own writes and for Next's one-byte acknowledgement, then
// acknowledges upstream. It is the same work a chunkserver does in a
// replication chain, with nothing else.
type RelayNode struct {
	opts RelayNodeOptions
	lis  net.Listener
	seq  atomic.Uint64
	wg   sync.WaitGroup
	mu   sync.Mutex
	// conns are the live upstream connections, closed by Close; guarded by mu.
	conns  map[net.Conn]struct{}
	closed bool // guarded by mu
}

// NewRelayNode binds the listener; Serve runs it.
func NewRelayNode(opts RelayNodeOptions) (*RelayNode, error) {
	if opts.Dir == "" {
		return nil, errors.New("relay node: Dir is required")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("relay node: %w", err)
	}
	return &RelayNode{opts: opts, lis: lis, conns: map[net.Conn]struct{}{}}, nil
}

// Addr is the address the node listens on.
func (n *RelayNode) Addr() string { return n.lis.Addr().String() }

// Serve accepts streams until Close; it returns nil after Close.
func (n *RelayNode) Serve() error {
	for {
		c, err := n.lis.Accept()
		if err != nil {
			n.mu.Lock()
			closed := n.closed
			n.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("relay node: accept: %w", err)
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			c.Close()
			return nil
		}
		n.conns[c] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go func() {
			defer n.wg.Done()
			if err := n.relay(c.(*net.TCPConn)); err != nil {
				n.opts.Logger.Warn("relay stream failed", "err", err)
			}
			n.mu.Lock()
			delete(n.conns, c)
			n.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops accepting, breaks live streams and waits for them.
func (n *RelayNode) Close() error {
	n.mu.Lock()
	n.closed = true
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	err := n.lis.Close()
	n.wg.Wait()
	return err
}

// relayPacket is one buffer in flight: it goes back to the free list once
// both the forwarder and the disk writer are done with it.
type relayPacket struct {
	buf  []byte
	n    int
	refs atomic.Int32
}

func (n *RelayNode) relay(up *net.TCPConn) error {
	var next *net.TCPConn
	if n.opts.Next != "" {
		c, err := net.Dial("tcp", n.opts.Next)
		if err != nil {
			return fmt.Errorf("dial next hop: %w", err)
		}
		next = c.(*net.TCPConn)
		defer next.Close()
	}
	path := filepath.Join(n.opts.Dir, fmt.Sprintf("stream-%d", n.seq.Add(1)))
	f, _, err := openDirect(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()

	free := make(chan *relayPacket, relayBuffers)
	for range relayBuffers {
		free <- &relayPacket{buf: alignedBuffer(relayBufBytes)}
	}
	release := func(p *relayPacket) {
		if p.refs.Add(-1) == 0 {
			free <- p
		}
	}
	toDisk := make(chan *relayPacket, relayBuffers)
	toNext := make(chan *relayPacket, relayBuffers)
	var wg sync.WaitGroup
	var diskErr, nextErr error
	var diskBytes int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range toDisk {
			if diskErr == nil {
				// O_DIRECT wants aligned lengths: pad the last packet with
				// zeros and cut the file back afterwards.
				w := alignUp(p.n)
				clear(p.buf[p.n:w])
				if _, err := f.Write(p.buf[:w]); err != nil {
					diskErr = fmt.Errorf("write %s: %w", path, err)
				}
				diskBytes += int64(p.n)
			}
			release(p)
		}
	}()
	if next != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range toNext {
				if nextErr == nil {
					if _, err := next.Write(p.buf[:p.n]); err != nil {
						nextErr = fmt.Errorf("forward: %w", err)
						up.Close() // unblock the reader
					}
				}
				release(p)
			}
		}()
	}
	var readErr error
	for {
		p := <-free
		k, err := io.ReadFull(up, p.buf)
		if k > 0 {
			p.n = k
			if next != nil {
				p.refs.Store(2)
				toNext <- p
			} else {
				p.refs.Store(1)
			}
			toDisk <- p
		} else {
			free <- p
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				readErr = fmt.Errorf("read upstream: %w", err)
			}
			break
		}
	}
	close(toDisk)
	close(toNext)
	wg.Wait()
	if err := errors.Join(readErr, diskErr, nextErr); err != nil {
		return err
	}
	if err := f.Truncate(diskBytes); err != nil {
		return err
	}
	if next != nil {
		if err := next.CloseWrite(); err != nil {
			return err
		}
		var ack [1]byte
		if _, err := io.ReadFull(next, ack[:]); err != nil {
			return fmt.Errorf("wait for next hop's ack: %w", err)
		}
	}
	_, err = up.Write([]byte{1})
	return err
}
