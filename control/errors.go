package control

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control/controlpb"
)

// grpcCode is the gRPC status class used for each ErrorCode.
var grpcCode = map[controlpb.ErrorCode]codes.Code{
	controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED:     codes.Unknown,
	controlpb.ErrorCode_ERROR_CODE_NOT_FOUND:       codes.NotFound,
	controlpb.ErrorCode_ERROR_CODE_EXISTS:          codes.AlreadyExists,
	controlpb.ErrorCode_ERROR_CODE_NOT_DIR:         codes.FailedPrecondition,
	controlpb.ErrorCode_ERROR_CODE_IS_DIR:          codes.FailedPrecondition,
	controlpb.ErrorCode_ERROR_CODE_NOT_EMPTY:       codes.FailedPrecondition,
	controlpb.ErrorCode_ERROR_CODE_BAD_PATH:        codes.InvalidArgument,
	controlpb.ErrorCode_ERROR_CODE_NO_SPACE:        codes.ResourceExhausted,
	controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA: codes.Unavailable,
	controlpb.ErrorCode_ERROR_CODE_STALE_VERSION:   codes.FailedPrecondition,
	controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK:   codes.NotFound,
	controlpb.ErrorCode_ERROR_CODE_UNKNOWN_SERVER:  codes.FailedPrecondition,
	controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT:    codes.InvalidArgument,
	controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN:       codes.Unavailable,
}

// GRPCCode returns the gRPC status class Errorf uses for code.
func GRPCCode(code controlpb.ErrorCode) codes.Code {
	if c, ok := grpcCode[code]; ok {
		return c
	}
	return codes.Unknown
}

// Errorf returns an error to answer a control call with: a gRPC status whose
// class follows from code and whose details carry a controlpb.ErrorDetail
// holding code, with the formatted message.
func Errorf(code controlpb.ErrorCode, format string, args ...any) error {
	st := status.New(GRPCCode(code), fmt.Sprintf(format, args...))
	if withDetail, err := st.WithDetails(&controlpb.ErrorDetail{Code: code}); err == nil {
		st = withDetail
	}
	return st.Err()
}

// Code extracts the ErrorCode from an error returned by a control call (or
// built by Errorf), also when wrapped with %w. It returns
// ERROR_CODE_UNSPECIFIED for nil, for non-gRPC errors and for statuses
// without an ErrorDetail (transport failures, deadlines, cancellations).
func Code(err error) controlpb.ErrorCode {
	if err == nil {
		return controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED
	}
	st, ok := status.FromError(err)
	if !ok {
		return controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*controlpb.ErrorDetail); ok {
			return ed.GetCode()
		}
	}
	return controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// IsCode reports whether err carries the given ErrorCode.
func IsCode(err error, code controlpb.ErrorCode) bool {
	return err != nil && Code(err) == code
}

// Retryable reports whether a failed control call may succeed when retried
// unchanged (possibly on another connection): transport unavailability,
// deadline expiry, NO_LIVE_REPLICA and TRY_AGAIN. Errors the server chose on purpose
// for bad input (NOT_FOUND, BAD_PATH, ...) are not retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	switch Code(err) {
	case controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN:
		return true
	}
	if Code(err) != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	switch se.GRPCStatus().Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}
