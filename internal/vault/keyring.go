package vault

// Keyring holds master keys by id. Current seals; every key opens.
type Keyring struct{}

// Source says where the master key came from, for start-up messages.
type Source int

// LoadKeyring loads the master key from the STANDIN_MASTER_KEY value env
// (base64, 32 bytes) if non-empty, else from dataDir/master.key, which is
// created with mode 0600 on first start. It refuses a key file readable or
// writable by group or others, with an error saying what to do (chmod 600).
// A pending rotation (dataDir/master.key.next) is loaded as well, so data
// rewrapped just before a crash still opens.
func LoadKeyring(dataDir, env string) (*Keyring, error) { panic("TODO") }

// CurrentID is the id of the key that Seal uses.
func (k *Keyring) CurrentID() string { panic("TODO") }

// Has reports whether the keyring holds key id.
func (k *Keyring) Has(id string) bool { panic("TODO") }

// Rotation is a master key rotation in progress: the new key is already on
// disk as dataDir/master.key.next (or given by the operator), not yet current.
type Rotation struct{}

// BeginRotation makes a new master key and adds it to the keyring as the key
// that Seal and Rewrap will use. With a file key it writes
// dataDir/master.key.next (0600, fsynced) first. With an env key, newEnv
// (STANDIN_NEW_MASTER_KEY, base64 32 bytes) must be non-empty and is used.
func (k *Keyring) BeginRotation(dataDir, newEnv string) (*Rotation, error) { panic("TODO") }

// Commit finishes a rotation after every blob was rewrapped: with a file key
// it renames master.key.next over master.key and fsyncs the directory; the
// old key is dropped from the keyring.
func (r *Rotation) Commit() error { panic("TODO") }
