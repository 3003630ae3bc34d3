// Package capability implements master-signed chunk capabilities, the
// data-channel access tokens of GFS-Go (as HDFS block access tokens).
//
// The master holds a Keyring: it signs, for one chunk handle, a set of
// allowed operations (read, write, append, copy), an expiry, the id of the
// key that signed it and the client it was issued to, with HMAC-SHA256 over
// a fixed 32-byte binary encoding (Size bytes in all with the MAC). The
// master shares its keys with the chunkservers over the authenticated
// control channel; a chunkserver's Verifier checks every request's token
// against the chunk and operation the request touches.
//
// Invariants:
//   - A token is accepted only if its key id is known and unexpired, its MAC
//     matches (compared in constant time, before any other field is trusted),
//     it has not expired, it names exactly the chunk the request touches and
//     it allows the request's operation. Each refusal has its own sentinel
//     error and its own counter.
//   - Keys rotate: the keyring signs with its current key, announces the next
//     key one rotation period before it signs anything (so chunkservers learn
//     it through heartbeats before a token signed with it arrives), and keeps
//     previous keys listed until the last token they signed has expired. A
//     token never outlives its key.
//   - Secrets (key material, token MACs) never appear in String, GoString,
//     slog values or error messages.
//   - The keys are only as secret as the channel that carries them: sharing
//     them over an unauthenticated control channel gives them to anyone who
//     can talk to the master, so enforcement is meaningful only under mutual
//     TLS with the key-carrying calls restricted to chunkservers.
package capability
