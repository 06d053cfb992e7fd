// Package syncwire is the frame codec of verifier sync (spec/sync.md §3 and
// §4): the signed snapshots, changes and heartbeats an issuer node streams
// to verifiers from GET /v1/sync, and that verifiers keep in their state
// file.
//
// The issuer encodes with EncodeSnapshot (or WriteSnapshot, which streams a
// snapshot of any size), EncodeChange and EncodeHeartbeat, signing with
// its active root key. Verifiers decode with a Reader, which returns
// complete signed units (a whole snapshot, a change, a heartbeat) and
// leaves the choice of the key to the caller: Unit.VerifyWith checks a
// unit against the keys the caller holds, Unit.VerifyBootstrap checks a
// snapshot against a key inside it (spec/sync.md §4, bootstrap).
//
// # Trust boundary
//
// Every byte a Reader reads is untrusted until the unit it belongs to has
// been verified: a stream may come from a lagging node, a relay, a cached
// file or a broken proxy. The decoder is strict (any deviation from §3 is
// ErrMalformed), checks every length and count against the bytes actually
// present before allocating for it, reads a frame body in steps of at most
// 64 KiB so that a length field alone never makes it allocate, and never
// panics on input. Decoding does not make a unit trusted: the caller must
// verify it, then apply the epoch rules of §1 (which need the state the
// Reader does not have), and must refuse a snapshot that lists an entry
// twice. Encoders trust their input only as far as to refuse values the
// format cannot carry (ErrInvalid, ErrTooLarge).
//
// Signatures are Ed25519 over "writ-sync-v1\x00" ‖ type ‖ payload, so they
// can never be taken for token signatures or for a frame of another type.
//
// The encoders are pure functions, safe for concurrent use; they neither
// keep nor modify their arguments. A Reader is for one goroutine.
//
// # Usage
//
// Issuer side:
//
//	w.Header().Set("Content-Type", syncwire.ContentType)
//	if _, err := syncwire.WriteSnapshot(w, snap, syncwire.Signer{KeyID: id, Key: priv}); err != nil { … }
//	hb, err := syncwire.EncodeHeartbeat(&syncwire.Heartbeat{Epoch: e, Time: t, Node: "n1"}, signer)
//
// Verifier side:
//
//	r := syncwire.NewReader(resp.Body)
//	for {
//		u, err := r.Next()
//		if err == io.EOF { break }
//		if err != nil { … } // ErrMalformed, ErrTruncated, ErrBadSignature (digest)
//		if err := u.VerifyWith(heldKey); err != nil { … } // ErrBadSignature
//		// apply u.Snapshot, u.Change or u.Heartbeat by the rules of §1
//	}
package syncwire
