package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// File names in the data directory.
const (
	keyFileName     = "master.key"
	nextKeyFileName = "master.key.next"
)

// keyIDDomain separates the key id hash from any other use of SHA-256 over
// the key.
const keyIDDomain = "standin master key id"

// genKeyHint is the end of every "bad key" error: what to do about it.
const genKeyHint = "generate one with: head -c32 /dev/urandom | base64"

// Keyring holds master keys by id. Current seals; every key opens.
//
// A Keyring is safe for concurrent use; a rotation may run while other
// goroutines seal and unseal.
type Keyring struct {
	mu      sync.RWMutex
	keys    map[string]*masterKey // by id
	current string
	// pending is the id of a key loaded from master.key.next at start (a
	// rotation interrupted by a crash), or "".
	pending   string
	rotating  bool
	source    Source
	dataDir   string
	generated bool
}

// masterKey is one master key, ready to wrap and unwrap data keys. The raw
// key bytes are not kept: the AEAD holds the expanded key.
type masterKey struct {
	id    string
	rawID [keyIDLen]byte
	aead  cipher.AEAD
}

// Source says where the master key came from, for start-up messages.
type Source int

const (
	// SourceFile: dataDir/master.key.
	SourceFile Source = iota + 1
	// SourceEnv: the STANDIN_MASTER_KEY environment variable.
	SourceEnv
	// SourceMemory: NewKeyring, for tests and embedding.
	SourceMemory
)

func (s Source) String() string {
	switch s {
	case SourceFile:
		return "file"
	case SourceEnv:
		return "environment"
	case SourceMemory:
		return "memory"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// LoadKeyring loads the master key from the STANDIN_MASTER_KEY value env
// (base64, 32 bytes) if non-empty, else from dataDir/master.key, which is
// created with mode 0600 on first start. It refuses a key file readable or
// writable by group or others, with an error saying what to do (chmod 600).
// A pending rotation (dataDir/master.key.next) is loaded as well, so data
// rewrapped just before a crash still opens.
func LoadKeyring(dataDir, env string) (*Keyring, error) {
	k := &Keyring{keys: map[string]*masterKey{}, dataDir: dataDir}
	if env != "" {
		key, err := decodeEnvKey("STANDIN_MASTER_KEY", env)
		if err != nil {
			return nil, err
		}
		mk, err := newMasterKey(key)
		if err != nil {
			return nil, err
		}
		k.source = SourceEnv
		k.add(mk)
		k.current = mk.id
		return k, nil
	}

	k.source = SourceFile
	path := filepath.Join(dataDir, keyFileName)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = generateKey()
		if err != nil {
			return nil, err
		}
		created, werr := writeKeyFile(dataDir, keyFileName, key)
		if werr != nil {
			clear(key)
			return nil, werr
		}
		if created {
			k.generated = true
		} else {
			// Another process created it first: use theirs.
			clear(key)
			key, err = readKeyFile(path)
		}
	}
	if err != nil {
		return nil, err
	}
	mk, err := newMasterKey(key)
	if err != nil {
		return nil, err
	}
	k.add(mk)
	k.current = mk.id

	next, err := readKeyFile(filepath.Join(dataDir, nextKeyFileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		nk, err := newMasterKey(next)
		if err != nil {
			return nil, err
		}
		if nk.id != mk.id {
			k.add(nk)
			k.pending = nk.id
		}
	}
	return k, nil
}

// NewKeyring returns an in-memory keyring holding one 32-byte master key,
// for tests and for callers that obtain the key themselves. key is not
// retained. BeginRotation on it needs newEnv, as for an env key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != keyLen {
		return nil, fmt.Errorf("new keyring: master key is %d bytes, want %d", len(key), keyLen)
	}
	mk, err := newMasterKey(key)
	if err != nil {
		return nil, err
	}
	k := &Keyring{keys: map[string]*masterKey{}, source: SourceMemory}
	k.add(mk)
	k.current = mk.id
	return k, nil
}

// CurrentID is the id of the key that Seal uses.
func (k *Keyring) CurrentID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Has reports whether the keyring holds key id.
func (k *Keyring) Has(id string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.keys[id]
	return ok
}

// Source says where the current master key came from.
func (k *Keyring) Source() Source { return k.source }

// Generated reports whether LoadKeyring created dataDir/master.key just now,
// so start-up can tell the operator to back it up.
func (k *Keyring) Generated() bool { return k.generated }

// PendingRotation reports whether LoadKeyring found dataDir/master.key.next,
// left by a rotation that neither committed nor aborted (a crash). Both keys
// open data; the old one still seals. Finish it with ResumeRotation, rewrap
// every blob, then Commit.
func (k *Keyring) PendingRotation() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.pending != ""
}

// AddKey adds a master key (base64 of 32 bytes, as in an environment variable
// named name, which only appears in errors) that opens data but does not
// seal. It is for env-key deployments interrupted mid-rotation, where some
// blobs still name the previous key. It returns the key's id.
func (k *Keyring) AddKey(name, value string) (string, error) {
	key, err := decodeEnvKey(name, value)
	if err != nil {
		return "", err
	}
	mk, err := newMasterKey(key)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.add(mk)
	return mk.id, nil
}

// add puts mk in the keyring. Callers hold k.mu or own k exclusively.
func (k *Keyring) add(mk *masterKey) { k.keys[mk.id] = mk }

// currentKey returns the master key that seals.
func (k *Keyring) currentKey() *masterKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[k.current]
}

// key returns the master key with id, or nil.
func (k *Keyring) key(id string) *masterKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[id]
}

// Rotation is a master key rotation in progress: the new key is already on
// disk as dataDir/master.key.next (or given by the operator), not yet current.
type Rotation struct {
	k       *Keyring
	dataDir string
	oldID   string
	newID   string
	// onDisk: the new key is in dataDir/master.key.next (file source).
	onDisk bool
	done   bool
}

// BeginRotation makes a new master key and adds it to the keyring as the key
// that Seal and Rewrap will use. With a file key it writes
// dataDir/master.key.next (0600, fsynced) first. With an env key, newEnv
// (STANDIN_NEW_MASTER_KEY, base64 32 bytes) must be non-empty and is used.
//
// With a file key, a non-empty newEnv is used as the new key instead of a
// generated one. Only one rotation runs at a time; a rotation left pending by
// a crash is continued with ResumeRotation instead.
func (k *Keyring) BeginRotation(dataDir, newEnv string) (*Rotation, error) {
	var key []byte
	var err error
	switch {
	case newEnv != "":
		key, err = decodeEnvKey("STANDIN_NEW_MASTER_KEY", newEnv)
	case k.source == SourceFile:
		key, err = generateKey()
	default:
		err = fmt.Errorf("begin rotation: the master key comes from the %s, so the new one must too: set STANDIN_NEW_MASTER_KEY (base64 of 32 bytes; %s)", k.source, genKeyHint)
	}
	if err != nil {
		return nil, err
	}
	defer clear(key)
	mk, err := newMasterKey(key)
	if err != nil {
		return nil, err
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.rotating:
		return nil, errors.New("begin rotation: a rotation is already in progress")
	case k.pending != "":
		return nil, fmt.Errorf("begin rotation: a rotation is pending (%s exists); resume it instead", filepath.Join(k.dataDir, nextKeyFileName))
	case mk.id == k.current:
		return nil, errors.New("begin rotation: the new master key equals the current one")
	}
	r := &Rotation{k: k, dataDir: dataDir, oldID: k.current, newID: mk.id}
	if k.source == SourceFile {
		created, err := writeKeyFile(dataDir, nextKeyFileName, key)
		if err != nil {
			return nil, fmt.Errorf("begin rotation: %w", err)
		}
		if !created {
			return nil, fmt.Errorf("begin rotation: %s already exists; a rotation is pending", filepath.Join(dataDir, nextKeyFileName))
		}
		r.onDisk = true
	}
	k.add(mk)
	k.current = mk.id
	k.rotating = true
	return r, nil
}

// ResumeRotation continues the rotation that PendingRotation reports: the key
// from dataDir/master.key.next becomes the one Seal and Rewrap use. The
// caller rewraps every blob and then calls Commit.
func (k *Keyring) ResumeRotation() (*Rotation, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pending == "" {
		return nil, errors.New("resume rotation: no rotation is pending")
	}
	if k.rotating {
		return nil, errors.New("resume rotation: a rotation is already in progress")
	}
	r := &Rotation{k: k, dataDir: k.dataDir, oldID: k.current, newID: k.pending, onDisk: true}
	k.current = k.pending
	k.pending = ""
	k.rotating = true
	return r, nil
}

// OldID is the id of the key being replaced.
func (r *Rotation) OldID() string { return r.oldID }

// NewID is the id of the key that replaces it, already the keyring's current
// key.
func (r *Rotation) NewID() string { return r.newID }

// Commit finishes a rotation after every blob was rewrapped: with a file key
// it renames master.key.next over master.key and fsyncs the directory; the
// old key is dropped from the keyring.
//
// With an env key nothing is written: the operator must now start standin
// with STANDIN_MASTER_KEY set to the new key.
func (r *Rotation) Commit() error {
	k := r.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.done {
		return errors.New("commit rotation: rotation already finished")
	}
	if r.onDisk {
		next := filepath.Join(r.dataDir, nextKeyFileName)
		if err := os.Rename(next, filepath.Join(r.dataDir, keyFileName)); err != nil {
			return fmt.Errorf("commit rotation: %w", err)
		}
		if err := syncDir(r.dataDir); err != nil {
			return fmt.Errorf("commit rotation: %w", err)
		}
	}
	delete(k.keys, r.oldID)
	r.done = true
	k.rotating = false
	return nil
}

// Abort gives up a rotation: the old key seals again, the new key is dropped
// from the keyring and master.key.next removed. Call it only while no stored
// blob names the new key (for example, after the transaction that rewrapped
// them rolled back): such blobs do not open afterwards.
func (r *Rotation) Abort() error {
	k := r.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.done {
		return errors.New("abort rotation: rotation already finished")
	}
	if r.onDisk {
		err := os.Remove(filepath.Join(r.dataDir, nextKeyFileName))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("abort rotation: %w", err)
		}
		if err := syncDir(r.dataDir); err != nil {
			return fmt.Errorf("abort rotation: %w", err)
		}
	}
	delete(k.keys, r.newID)
	k.current = r.oldID
	r.done = true
	k.rotating = false
	return nil
}

// newMasterKey derives the id of key and prepares its AEAD.
func newMasterKey(key []byte) (*masterKey, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	mk := &masterKey{aead: aead}
	mk.rawID = keyIDOf(key)
	mk.id = hex.EncodeToString(mk.rawID[:])
	return mk, nil
}

// keyIDOf is the first 8 bytes of SHA-256(domain || key): stable, public,
// and a different key cannot claim the same id (short of a hash collision),
// so a wrong key fails as "unknown key" rather than as corrupt data.
func keyIDOf(key []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte(keyIDDomain))
	h.Write(key)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// decodeEnvKey decodes base64 (standard or URL alphabet, padded or not) of
// exactly 32 bytes. The error names the variable, never its value.
func decodeEnvKey(name, value string) ([]byte, error) {
	s := strings.TrimSpace(value)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) == keyLen {
			return key, nil
		}
		clear(key)
		return nil, fmt.Errorf("%s must be base64 of 32 bytes, got %d bytes; %s", name, len(key), genKeyHint)
	}
	return nil, fmt.Errorf("%s must be base64 of 32 bytes; %s", name, genKeyHint)
}

// readKeyFile reads a key file, refusing one that group or others may
// access. A missing file gives an error matching fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o; it must be readable only by its owner: chmod 600 %s", path, perm, path)
	}
	// A key file is 45 bytes; read a little more so that a wrong file is
	// reported as such instead of being read whole.
	buf, err := io.ReadAll(io.LimitReader(f, 128))
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	// Decode from bytes, not a string, so that no copy of the key outlives
	// the clear calls.
	text := bytes.TrimSpace(buf)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(key, text)
	key = key[:n]
	if err != nil || n != keyLen {
		clear(key[:cap(key)])
		return nil, fmt.Errorf("master key file %s must hold base64 of 32 bytes; if it was damaged, restore it from backup", path)
	}
	return key, nil
}

// writeKeyFile writes key as base64 to dir/name, mode 0600, without ever
// replacing an existing file: it writes and fsyncs a temporary file, links
// it into place (which fails if name exists, like O_EXCL) and fsyncs the
// directory. A crash leaves either no file or a complete one, never a
// half-written key. created is false if name already existed.
func writeKeyFile(dir, name string, key []byte) (created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*") // O_EXCL, mode 0600
	if err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	text := make([]byte, base64.StdEncoding.EncodedLen(len(key))+1)
	base64.StdEncoding.Encode(text, key)
	text[len(text)-1] = '\n'
	_, err = tmp.Write(text)
	clear(text)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	if err := os.Link(tmpPath, filepath.Join(dir, name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("write master key: %w", err)
	}
	if err := os.Remove(tmpPath); err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return false, fmt.Errorf("write master key: %w", err)
	}
	return true, nil
}

// generateKey returns 32 bytes from crypto/rand. Master keys always come
// from the system generator, never from a Vault's reader.
func generateKey() ([]byte, error) {
	key := make([]byte, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	return key, nil
}

// syncDir fsyncs a directory so that a create, rename or remove in it
// survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
