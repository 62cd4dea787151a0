package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/standin/standin/internal/standin"
	"github.com/standin/standin/internal/store"
	"github.com/standin/standin/internal/vault"
)

// standinKeyName names the sealed stand-in HMAC key in the store's meta table.
const standinKeyName = "standin_key"

// ErrLocked means another process (a running server) holds the data dir.
var ErrLocked = errors.New("data directory in use")

// Data is an opened data directory: lock held, master key checked against
// the stored data, store open.
type Data struct {
	Dir     string
	Keyring *vault.Keyring
	Vault   *vault.Vault
	Store   *store.SQLite
	Minter  *standin.Minter
	lock    *os.File
}

// OpenData takes the data dir's lock, loads the master key and opens the
// store. It refuses, touching no data, when the key does not open what is
// stored. A rotation left pending by a crash is finished first.
func OpenData(ctx context.Context, dir string, logger *slog.Logger) (_ *Data, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	d := &Data{Dir: dir, lock: lock}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	kr, err := vault.LoadKeyring(dir, os.Getenv("STANDIN_MASTER_KEY"))
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	d.Keyring = kr
	d.Vault = vault.New(kr, nil)

	// Check the key against the data read-only first: on a mismatch the
	// store is never opened for writing, so nothing in dir changes.
	dbPath := filepath.Join(dir, DBFile)
	ids, err := store.ReadKeyIDs(ctx, dbPath)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := d.checkKeys(ids); err != nil {
		d.forgetGeneratedKey()
		return nil, err
	}
	d.Store, err = store.OpenSQLite(ctx, dbPath)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	if kr.PendingRotation() {
		if err := d.finishPendingRotation(ctx, logger); err != nil {
			return nil, err
		}
	}
	if err := d.loadMinter(ctx); err != nil {
		d.forgetGeneratedKey()
		return nil, err
	}
	if kr.Generated() {
		logger.Warn("generated a new master key; back it up, without it the secrets cannot be opened",
			"path", filepath.Join(dir, "master.key"))
	}
	return d, nil
}

// forgetGeneratedKey removes a master key file made by this start when the
// start fails: it opens nothing and would only confuse the next start.
func (d *Data) forgetGeneratedKey() {
	if d.Keyring.Generated() {
		os.Remove(filepath.Join(d.Dir, "master.key"))
	}
}

// checkKeys refuses a master key that does not open the stored data (ids
// are the key ids the data names).
func (d *Data) checkKeys(ids []string) error {
	var missing []string
	for _, id := range ids {
		if !d.Keyring.Has(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the master key (id %s, from the %s) does not open the data in %s, which was sealed with key id %s: "+
			"set STANDIN_MASTER_KEY to the key used before or restore %s; nothing was changed",
			d.Keyring.CurrentID(), d.Keyring.Source(), d.Dir, strings.Join(missing, ", "),
			filepath.Join(d.Dir, "master.key"))
	}
	return nil
}

// loadMinter opens (or on first start makes) the stand-in key.
func (d *Data) loadMinter(ctx context.Context) error {
	sealed, err := d.Store.GetSealedMeta(ctx, standinKeyName)
	var key []byte
	switch {
	case errors.Is(err, store.ErrNotFound):
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("make stand-in key: %w", err)
		}
		sealed, err := d.Vault.SealKey(standinKeyName, key)
		if err != nil {
			return fmt.Errorf("seal stand-in key: %w", err)
		}
		kid, err := vault.KeyID(sealed)
		if err != nil {
			return fmt.Errorf("seal stand-in key: %w", err)
		}
		if err := d.Store.PutSealedMeta(ctx, standinKeyName, sealed, kid); err != nil {
			return fmt.Errorf("store stand-in key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read stand-in key: %w", err)
	default:
		key, err = d.Vault.OpenKey(standinKeyName, sealed)
		if err != nil {
			return fmt.Errorf("the master key does not open the stand-in key in %s (%w): "+
				"set STANDIN_MASTER_KEY to the key used before or restore master.key; nothing was changed", d.Dir, err)
		}
	}
	m, err := standin.NewMinter(key)
	clear(key)
	if err != nil {
		return fmt.Errorf("stand-in key: %w", err)
	}
	d.Minter = m
	return nil
}

// RotateMasterKey rewraps every data key under a new master key. newEnv is
// STANDIN_NEW_MASTER_KEY (required when the key comes from the environment).
// Values are never decrypted: only data keys are rewrapped.
func (d *Data) RotateMasterKey(ctx context.Context, newEnv string) (oldID, newID string, n int, err error) {
	r, err := d.Keyring.BeginRotation(d.Dir, newEnv)
	if err != nil {
		return "", "", 0, err
	}
	n, err = d.rewrapAll(ctx)
	if err != nil {
		if aerr := r.Abort(); aerr != nil {
			return "", "", 0, fmt.Errorf("%w (and abort failed: %v)", err, aerr)
		}
		return "", "", 0, err
	}
	if err := r.Commit(); err != nil {
		return "", "", 0, err
	}
	return r.OldID(), r.NewID(), n, nil
}

func (d *Data) rewrapAll(ctx context.Context) (int, error) {
	n := 0
	err := d.Store.Rewrap(ctx, func(sealed []byte) ([]byte, string, error) {
		out, err := d.Vault.Rewrap(sealed)
		if err != nil {
			return nil, "", err
		}
		kid, err := vault.KeyID(out)
		if err != nil {
			return nil, "", err
		}
		n++
		return out, kid, nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrap data keys: %w", err)
	}
	return n, nil
}

// finishPendingRotation completes a rotation interrupted by a crash: both
// keys are in the keyring, so every blob opens; rewrap all to the new key
// and commit.
func (d *Data) finishPendingRotation(ctx context.Context, logger *slog.Logger) error {
	r, err := d.Keyring.ResumeRotation()
	if err != nil {
		return err
	}
	n, err := d.rewrapAll(ctx)
	if err != nil {
		return fmt.Errorf("finish interrupted master key rotation: %w", err)
	}
	if err := r.Commit(); err != nil {
		return fmt.Errorf("finish interrupted master key rotation: %w", err)
	}
	logger.Info("finished interrupted master key rotation", "old_key_id", r.OldID(), "new_key_id", r.NewID(), "rewrapped", n)
	return nil
}

// Close releases the store and the lock.
func (d *Data) Close() error {
	var err error
	if d.Store != nil {
		err = d.Store.Close()
	}
	if d.lock != nil {
		d.lock.Close()
	}
	return err
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data directory %s has mode %#o; it holds the master key and must be private: chmod 700 %s",
			dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// lockDir takes an exclusive flock on dir/lock, so two servers (or a server
// and an offline admin command) never share a data directory.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		who := "another process"
		if p := strings.TrimSpace(string(pid)); p != "" {
			who = "process " + p
		}
		return nil, fmt.Errorf("%w: %s holds %s; stop it first (is `standin serve` running?)", ErrLocked, who, path)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return f, nil
}

// writePrivateFile writes data to path with mode 0600 via a temp file and
// rename, so a crash never leaves a half-written file.
func writePrivateFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadOrCreateToken returns the admin API token from dir/admin.token,
// creating it (0600) on first start.
func loadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("admin token file %s has mode %#o; it must be readable only by its owner: chmod 600 %s",
				path, fi.Mode().Perm(), path)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("admin token file %s is too short; delete it to make a new one", path)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		tok := "stn_" + strings.TrimRight(base32Lower.EncodeToString(raw), "=")
		if err := writePrivateFile(path, []byte(tok+"\n")); err != nil {
			return "", fmt.Errorf("write admin token: %w", err)
		}
		return tok, nil
	default:
		return "", fmt.Errorf("read admin token: %w", err)
	}
}
