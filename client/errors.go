package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// Sentinel errors. Every error a Client returns wraps at most one of these
// (test with errors.Is) together with the operation and path it concerns.
var (
	ErrNotFound      = errors.New("gfs: no such file or directory")
	ErrExists        = errors.New("gfs: file exists")
	ErrNotDir        = errors.New("gfs: not a directory")
	ErrIsDir         = errors.New("gfs: is a directory")
	ErrNotEmpty      = errors.New("gfs: directory not empty")
	ErrBadPath       = errors.New("gfs: bad path")
	ErrNoSpace       = errors.New("gfs: no space (not enough live chunkservers or disk)")
	ErrNoLiveReplica = errors.New("gfs: no live replica")
	ErrStaleVersion  = errors.New("gfs: stale chunk version")
	ErrUnknownChunk  = errors.New("gfs: unknown chunk")
	ErrBadArgument   = errors.New("gfs: bad argument")
	ErrClosed        = errors.New("gfs: client closed")
	// ErrChecksum reports data that failed its end-to-end checksum on every
	// replica tried (also wraps a *dataclient.ChecksumError when one is at
	// hand).
	ErrChecksum = errors.New("gfs: checksum mismatch")
	// ErrTLSRequired: Dial without Options.TLS reached a master that
	// speaks TLS only.
	ErrTLSRequired = errors.New("gfs: the cluster requires TLS")
	// ErrNotTLS: Dial with Options.TLS reached a plaintext master.
	ErrNotTLS = errors.New("gfs: the cluster does not use TLS")
)

// codeErrors maps control-channel error codes onto the sentinels.
var codeErrors = map[controlpb.ErrorCode]error{
	controlpb.ErrorCode_ERROR_CODE_NOT_FOUND:       ErrNotFound,
	controlpb.ErrorCode_ERROR_CODE_EXISTS:          ErrExists,
	controlpb.ErrorCode_ERROR_CODE_NOT_DIR:         ErrNotDir,
	controlpb.ErrorCode_ERROR_CODE_IS_DIR:          ErrIsDir,
	controlpb.ErrorCode_ERROR_CODE_NOT_EMPTY:       ErrNotEmpty,
	controlpb.ErrorCode_ERROR_CODE_BAD_PATH:        ErrBadPath,
	controlpb.ErrorCode_ERROR_CODE_NO_SPACE:        ErrNoSpace,
	controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA: ErrNoLiveReplica,
	controlpb.ErrorCode_ERROR_CODE_STALE_VERSION:   ErrStaleVersion,
	controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK:   ErrUnknownChunk,
	controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT:    ErrBadArgument,
}

// controlError turns an error from a master call into one wrapping the
// matching sentinel (and the original gRPC error, so that control.Code and
// control.Retryable still see it), prefixed with the operation and path.
func controlError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	if sentinel, ok := codeErrors[control.Code(err)]; ok {
		msg := err.Error()
		if st, ok := status.FromError(err); ok {
			msg = st.Message()
		}
		return &opError{op: op, path: path, sentinel: sentinel, msg: msg, cause: err}
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// opError is a master error mapped onto a sentinel.
type opError struct {
	op, path string
	sentinel error
	msg      string
	cause    error
}

func (e *opError) Error() string {
	return fmt.Sprintf("%s %s: %v (%s)", e.op, e.path, e.sentinel, e.msg)
}

func (e *opError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// leaseChanged reports whether a data-channel error means the cached chunk
// location (primary, version) is out of date.
func leaseChanged(err error) bool {
	return errors.Is(err, dataclient.ErrNotPrimary) || errors.Is(err, dataclient.ErrStaleVersion) ||
		errors.Is(err, dataclient.ErrNoSuchChunk)
}
