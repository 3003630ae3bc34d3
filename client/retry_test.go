package client

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

func TestMutationRetryable(t *testing.T) {
	c := &Client{}
	p := "10.0.0.1:7001"
	cases := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("w: %w", dataclient.ErrNotPrimary), true},
		{&dataclient.ReplicaError{Addr: p, Err: dataclient.ErrStaleVersion}, true},
		{&dataclient.ReplicaError{Addr: "10.0.0.2:7001", Err: dataclient.ErrBadRequest}, true},
		{&dataclient.ReplicaError{Addr: p, Err: dataclient.ErrBadRequest}, false},
		{dataclient.ErrTooLarge, false},
		{fmt.Errorf("x: %w", ErrNotFound), false},
		{controlError("lookup", "/f", control.Errorf(controlpb.ErrorCode_ERROR_CODE_NO_SPACE, "full")), true},
		{controlError("lookup", "/f", control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_PATH, "bad")), false},
		{errors.New("connection reset"), true},
	}
	for i, tc := range cases {
		if got := c.mutationRetryable(tc.err, p); got != tc.want {
			t.Errorf("case %d (%v): retryable = %v, want %v", i, tc.err, got, tc.want)
		}
	}
}

func TestRetryableCall(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection refused")
	deadline := status.Error(codes.DeadlineExceeded, "slow")
	tryAgain := control.Errorf(controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN, "grace")
	exists := control.Errorf(controlpb.ErrorCode_ERROR_CODE_EXISTS, "exists")
	cases := []struct {
		kind callKind
		err  error
		want bool
	}{
		{idempotent, unavailable, true},
		{idempotent, deadline, true},
		{idempotent, tryAgain, true},
		{idempotent, exists, false},
		{idempotent, context.Canceled, false},
		{namespaceMutation, unavailable, true},
		{namespaceMutation, deadline, false},
		{namespaceMutation, tryAgain, true},
		{namespaceMutation, exists, false},
		{namespaceMutation, errors.New("plain"), false},
	}
	for i, tc := range cases {
		if got := retryableCall(tc.kind, tc.err); got != tc.want {
			t.Errorf("case %d (%v, kind %d): %v, want %v", i, tc.err, tc.kind, got, tc.want)
		}
	}
}
