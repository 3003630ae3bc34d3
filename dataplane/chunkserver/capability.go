package chunkserver

import (
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// CapabilityMode says whether data-channel requests must carry a valid
// master-signed capability (package dataplane/capability).
type CapabilityMode int

// Capability modes.
const (
	// CapabilitiesAuto requires capabilities when the control channel is
	// TLS (Options.TLS set): only then are the master's keys secret.
	CapabilitiesAuto CapabilityMode = iota
	// CapabilitiesRequired always requires them (tests; a plaintext
	// control channel leaks the keys to anyone who registers).
	CapabilitiesRequired
	// CapabilitiesOff accepts requests without checking capabilities.
	CapabilitiesOff
)

// Refusals returns how many data-channel requests the server refused for
// their capability, by reason.
func (s *Server) Refusals() capability.Refusals { return s.verifier.Refusals() }

// RequiresCapabilities reports whether the server checks capabilities.
func (s *Server) RequiresCapabilities() bool { return s.requireCaps }

// setKeys installs the capability keys the master sent (Register and
// Heartbeat answers). An answer without keys (an older master) changes
// nothing.
func (s *Server) setKeys(pbs []*controlpb.CapabilityKey) {
	if len(pbs) == 0 {
		return
	}
	keys := make([]capability.Key, 0, len(pbs))
	for _, pb := range pbs {
		k, err := capability.NewKey(pb.GetId(), pb.GetSecret(), time.Unix(0, pb.GetExpiresUnixNano()))
		if err != nil {
			s.log.Warn("master sent an unusable capability key", "err", err)
			continue
		}
		keys = append(keys, k)
	}
	s.verifier.SetKeys(keys)
}

// authorize checks the request's capability (c.capb[:h.CapLen]) for chunk
// handle and one of the operations in anyOf; allChunks skips the chunk test
// (pushes name no chunk). It returns false after answering the refusal
// (payload drained); err is then the connection's fate. With capabilities
// off it accepts everything.
func (c *dataConn) authorize(h *wire.Header, handle uint64, anyOf capability.Op, allChunks bool) (bool, error) {
	if !c.s.requireCaps {
		return true, nil
	}
	tok := c.capb[:h.CapLen]
	var err error
	if allChunks {
		_, err = c.s.verifier.VerifyAnyChunk(tok, anyOf)
	} else {
		_, err = c.s.verifier.VerifyAnyOp(tok, handle, anyOf)
	}
	if err == nil {
		return true, nil
	}
	// The refusal says why (never key material: see package capability).
	return false, c.fail(h, wire.StatusDenied, "%v: %v", h.Op, err)
}
