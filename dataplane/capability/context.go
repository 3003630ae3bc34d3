package capability

import "context"

type ctxKey struct{}

// NewContext returns ctx carrying token, the capability a data-channel
// client sends with the requests it makes under ctx (a request-scoped
// credential: the data client reads it with FromContext).
func NewContext(ctx context.Context, token []byte) context.Context {
	return context.WithValue(ctx, ctxKey{}, token)
}

// FromContext returns the token NewContext put in ctx, nil if none.
func FromContext(ctx context.Context) []byte {
	t, _ := ctx.Value(ctxKey{}).([]byte)
	return t
}
