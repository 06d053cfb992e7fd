package issuer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// KEK is a key-encryption key. Root signing keys are stored, replicated and
// snapshotted only as AES-256-GCM ciphertext under the KEK; every node is
// given the same KEK out of band (file or environment variable).
type KEK struct {
	aead cipher.AEAD
}

// NewKEK returns a KEK from 32 raw bytes. It returns ErrBadKEK otherwise.
func NewKEK(raw []byte) (*KEK, error) {
	if len(raw) != KEKSize {
		return nil, fmt.Errorf("%w: want %d bytes, got %d", ErrBadKEK, KEKSize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKEK, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKEK, err)
	}
	return &KEK{aead: aead}, nil
}

// ParseKEK decodes a KEK written as 64 hex digits or as standard or URL
// base64 of 32 bytes, ignoring surrounding whitespace.
func ParseKEK(text string) (*KEK, error) {
	s := strings.TrimSpace(text)
	if b, err := hex.DecodeString(s); err == nil && len(b) == KEKSize {
		return NewKEK(b)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KEKSize {
			return NewKEK(b)
		}
	}
	return nil, fmt.Errorf("%w: want 32 bytes as 64 hex digits or base64", ErrBadKEK)
}

// LoadKEK reads a KEK from the file at path (see ParseKEK). The file must
// not be readable by group or others.
func LoadKEK(path string) (*KEK, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKEK, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is accessible by group or others (mode %v); chmod 600 it", ErrBadKEK, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKEK, err)
	}
	return ParseKEK(string(b))
}

// GenerateKEKText returns a fresh random KEK as 64 hex digits.
func GenerateKEKText(rng io.Reader) (string, error) {
	b := make([]byte, KEKSize)
	if _, err := io.ReadFull(rng, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func keyAAD(id uint32) []byte {
	aad := []byte("writ root key v1 ")
	return binary.BigEndian.AppendUint32(aad, id)
}

// seal encrypts a root key's seed, bound to its id.
func (k *KEK) seal(id uint32, priv ed25519.PrivateKey) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, priv.Seed(), keyAAD(id)), nil
}

// open decrypts a sealed seed; it fails with ErrBadKEK when the KEK is
// wrong or the ciphertext was altered or moved to another key id.
func (k *KEK) open(id uint32, sealed []byte) (ed25519.PrivateKey, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed key %d too short", ErrBadKEK, id)
	}
	seed, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], keyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decrypt root key %d (wrong KEK?)", ErrBadKEK, id)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: root key %d has a bad seed size", ErrBadKEK, id)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
