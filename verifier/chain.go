package verifier

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// This file verifies the Ed25519 signature chain of token.md §1: block i
// is signed by the key block i-1 names in nextKey (block 0 by the root
// key) over block ‖ u32le(algorithm) ‖ nextKey, and the proof either
// holds the seed of the last nextKey or signs the last block.

// signedMessage returns block ‖ u32le(Ed25519 = 0) ‖ nextKey, followed by
// the block's signature when withSig (the sealed proof's message), built
// in buf.
func signedMessage(buf []byte, b *block, withSig bool) []byte {
	buf = append(buf[:0], b.data...)
	buf = append(buf, 0, 0, 0, 0)
	buf = append(buf, b.nextKey...)
	if withSig {
		buf = append(buf, b.sig...)
	}
	return buf
}

// selectRootKey finds the root key of t and verifies block 0 with it. A
// token naming its key is tried with that key only: an unknown id is
// ErrUnknownKey, a failed signature ErrBadSignature. A token without
// rootKeyId is tried with at most lim.MaxRootKeys keys of ks.RootKeys(),
// in order; when none verifies, ErrUnknownKey.
func selectRootKey(t *token, ks KeySource, lim *Limits, buf []byte) (RootKey, []byte, error) {
	buf = signedMessage(buf, &t.blocks[0], false)
	if t.hasRootKeyID {
		k, ok := ks.RootKey(t.rootKeyID)
		if !ok || len(k.Public) != ed25519.PublicKeySize {
			return RootKey{}, buf, fmt.Errorf("%w: root key id %d", ErrUnknownKey, t.rootKeyID)
		}
		if !ed25519.Verify(k.Public, buf, t.blocks[0].sig) {
			return RootKey{}, buf, fmt.Errorf("%w: authority block (root key %d)", ErrBadSignature, t.rootKeyID)
		}
		return k, buf, nil
	}
	keys := ks.RootKeys()
	if len(keys) > lim.MaxRootKeys {
		keys = keys[:lim.MaxRootKeys]
	}
	for _, k := range keys {
		if len(k.Public) == ed25519.PublicKeySize && ed25519.Verify(k.Public, buf, t.blocks[0].sig) {
			return k, buf, nil
		}
	}
	return RootKey{}, buf, fmt.Errorf("%w: no root key verifies a token without rootKeyId (%d tried)", ErrUnknownKey, len(keys))
}

// verifyChain verifies blocks 1…n and the proof of t, block 0 being
// already verified. Errors wrap ErrBadSignature.
func verifyChain(t *token, buf []byte) error {
	for i := 1; i < len(t.blocks); i++ {
		buf = signedMessage(buf, &t.blocks[i], false)
		if !ed25519.Verify(t.blocks[i-1].nextKey, buf, t.blocks[i].sig) {
			return fmt.Errorf("%w: block %d", ErrBadSignature, i)
		}
	}
	last := &t.blocks[len(t.blocks)-1]
	if t.nextSecret != nil {
		pub := ed25519.NewKeyFromSeed(t.nextSecret).Public().(ed25519.PublicKey)
		if !bytes.Equal(pub, last.nextKey) {
			return fmt.Errorf("%w: proof secret does not match the last block's key", ErrBadSignature)
		}
		return nil
	}
	buf = signedMessage(buf, last, true)
	if !ed25519.Verify(last.nextKey, buf, t.finalSig) {
		return fmt.Errorf("%w: final signature of the sealed token", ErrBadSignature)
	}
	return nil
}

// chainBuffer returns a buffer large enough for every signed message of t.
func chainBuffer(t *token) []byte {
	n := 0
	for i := range t.blocks {
		n = max(n, len(t.blocks[i].data))
	}
	return make([]byte, 0, n+4+ed25519.PublicKeySize+ed25519.SignatureSize)
}
