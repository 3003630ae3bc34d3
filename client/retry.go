package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// callKind says how safely a master call can be repeated.
type callKind int

const (
	// idempotent calls (Stat, List, Lookup: allocation of a given index
	// and lease grants are idempotent) are retried on every transient
	// failure, including deadlines.
	idempotent callKind = iota
	// namespaceMutation calls (Create, Mkdir, Delete, Rename) are retried
	// when the master could not be reached or lost the connection
	// (UNAVAILABLE without an error code) or asked to try again. The master
	// may have applied the first attempt before the connection broke (it
	// died after its log sync): every call carries one request id for all
	// its attempts, and the master answers a retry with the first answer
	// (master/requests.go). A deadline is returned to the caller.
	namespaceMutation
)

// callMaster runs fn until it succeeds, fails for good, ctx ends or
// Options.RetryTimeout passes, so that a master restart (or a moment of
// overload) is invisible to callers.
func (c *Client) callMaster(ctx context.Context, kind callKind, fn func(context.Context) error) error {
	var bo *backoff
	for {
		if err := c.checkOpen(); err != nil {
			return err
		}
		err := fn(ctx)
		if err != nil && ctx.Err() != nil {
			// Make errors.Is(err, context.Canceled) hold for the caller.
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if err == nil || !retryableCall(kind, err) {
			return err
		}
		if bo == nil {
			bo = c.newBackoff()
		}
		c.log.Debug("master call failed, retrying", "err", err)
		if !bo.sleep(ctx) {
			return err
		}
	}
}

func retryableCall(kind callKind, err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if kind == idempotent {
		return control.Retryable(err)
	}
	code := control.Code(err)
	if code == controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN {
		return true
	}
	if code != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return false
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable
}
