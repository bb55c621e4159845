package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/checkinbot/checkinbot/store"
)

// Opening the data file (DESIGN §8). A damaged file must never cost data
// silently: an empty, foreign, truncated or corrupt file is refused with an
// error naming the file and the reason, never "repaired", re-created or
// crashed on. A new file is created only where no file exists, and appears
// under its name only once it is complete and stamped as ours.

var (
	// keyFormat holds formatMarker in the meta bucket of every file this
	// program creates, so another program's bbolt file is never adopted.
	// Files of the first release have no marker; they are recognised by
	// their schema key and buckets, and stamped when first opened.
	keyFormat    = []byte("format")
	formatMarker = []byte("checkinbot data file")
)

// Created reports whether Open created a new, empty data file because none
// existed: serve warns, since an unmounted volume or a mistyped --data-dir
// looks exactly like that.
func (s *Store) Created() bool { return s.created }

// Open opens the data file at path, creating it only if nothing exists
// there. Before anything writes to an existing file it is checked, under
// a shared lock and without bbolt's memory map: bbolt's meta pages, the
// file's length against its last commit, every page of the tree, and our
// format marker and schema version. Refusals are *FileError. A file held
// by another process fails after one second with ErrLocked.
func Open(path string) (*Store, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options: with a keyring, records are sealed
// (sealing.go) and a file of clear records is sealed at once; without one,
// an encrypted file is refused (store.ErrNeedKey), and a key that did not
// encrypt the file is refused naming the key id the file expects
// (store.ErrWrongKey).
func OpenWith(path string, opt Options) (*Store, error) {
	audit, err := newAuditKeys(opt.AuditKey) // audit.go
	if err != nil {
		return nil, err
	}
	created, err := prepare(path)
	if err != nil {
		return nil, err
	}
	if err := inspect(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, false)
	if err != nil {
		return nil, classify(path, err, "open")
	}
	s := &Store{db: db, path: path, created: created, reqs: make(chan *writeRequest, maxGroup), bulk: make(chan *writeRequest, maxGroup), loopDone: make(chan struct{})}
	if err := guard(s.migrate); err != nil {
		db.Close()
		return nil, classify(path, err, "prepare")
	}
	if err := s.initKeys(opt.Keyring); err != nil {
		codecs.Delete(db)
		db.Close()
		return nil, classify(path, err, "unseal")
	}
	if err := guard(s.buildPendingDue); err != nil { // schema 5: the due index (pending_due.go)
		codecs.Delete(db)
		db.Close()
		return nil, classify(path, err, "prepare")
	}
	if err := guard(s.buildOwnerRows); err != nil { // the owner index (erase.go)
		codecs.Delete(db)
		db.Close()
		return nil, classify(path, err, "prepare")
	}
	if err := s.recountStatCounts(); err != nil { // stats.go
		codecs.Delete(db)
		db.Close()
		return nil, classify(path, err, "prepare")
	}
	if audit == nil {
		// The audit key follows the service key, not the master key
		// (audit.go): a rotation leaves it as it is.
		v, _ := codecs.Load(db)
		c, _ := v.(*codec)
		if audit, err = serviceAuditKeys(c); err != nil {
			codecs.Delete(db)
			db.Close()
			return nil, err
		}
	}
	s.audit, s.auditLegacy = audit, legacyAuditKeys(opt.Keyring)
	if err := s.resignAuditHead(); err != nil {
		codecs.Delete(db)
		db.Close()
		return nil, classify(path, err, "re-sign the audit head")
	}
	go s.commitLoop()
	return s, nil
}

// prepare looks at path before opening it and creates a new file when
// nothing exists there. It reports whether it created the file.
func prepare(path string) (created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, &store.FileError{Path: path, Kind: store.ErrIsDir, Reason: "give the path of the file inside it"}
	case err == nil && !fi.Mode().IsRegular():
		return false, &store.FileError{Path: path, Kind: store.ErrForeign, Reason: "not a regular file (" + fi.Mode().Type().String() + ")"}
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		di, derr := os.Stat(dir)
		switch {
		case derr == nil && !di.IsDir():
			return false, &store.FileError{Path: path, Kind: store.ErrNoDir, Reason: dir + " is not a directory"}
		case errors.Is(derr, fs.ErrNotExist) || errors.Is(derr, syscall.ENOTDIR):
			return false, &store.FileError{Path: path, Kind: store.ErrNoDir, Reason: "no directory " + dir + "; create it (mode 0700) or fix the path"}
		case derr != nil:
			return false, classify(path, derr, "look at the directory")
		}
		return create(path)
	case errors.Is(err, syscall.ENOTDIR):
		return false, &store.FileError{Path: path, Kind: store.ErrNoDir, Reason: "a part of the path is a file, not a directory"}
	default:
		return false, classify(path, err, "look at the file")
	}
}

// linkFile puts a finished new file under its name, failing if the name
// exists. A variable so tests can take away hard links.
var linkFile = os.Link

// create makes a new, stamped data file at path. It builds the file under
// a temporary name and links it into place, which fails if anything
// appeared at path meanwhile: an existing file, even an empty one, is
// never taken for new, and a crash leaves either no file or a complete one.
// Where the file system has no hard links it creates the file in place
// with O_EXCL instead (a crash then can leave an empty file, which the
// next start refuses rather than trusts).
func create(path string) (created bool, err error) {
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(filepath.Clean(dir), "."+base+".*.new")
	if err != nil {
		return false, classify(path, err, "create")
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name)
	if err := initFile(name); err != nil {
		return false, classify(path, err, "create")
	}
	err = linkFile(name, path)
	switch {
	case err == nil:
		// The link must survive a crash, or the next start would create
		// a new empty file beside the lost one.
		if err := syncDir(filepath.Dir(path)); err != nil {
			return false, classify(path, err, "create")
		}
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil // created meanwhile by someone else: open it as it is
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, classify(path, err, "create")
	}
	f.Close()
	if err := initFile(path); err != nil {
		os.Remove(path) // ours, created a moment ago, and holds nothing
		return false, classify(path, err, "create")
	}
	return true, syncDir(filepath.Dir(path))
}

// initFile turns the empty file at name into a stamped data file.
func initFile(name string) error {
	db, err := bolt.Open(name, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	s := &Store{db: db}
	if err := s.migrate(); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// maxOpenWalk is the largest file Open checks page by page (measured: 20 ms
// for 42 MiB, 0.3 s for 219 MiB, BenchmarkOpen); larger files get the
// header checks, and `checkinbot check` does the full walk.
const maxOpenWalk = 1 << 30

// inspect checks the existing file at path without writing to it; see
// examine. Open refuses a file with any page problem.
func inspect(path string) error {
	db, probs, err := examine(path, true)
	if err != nil {
		return err
	}
	if db != nil {
		db.Close()
	}
	if len(probs) > 0 {
		more := ""
		if len(probs) > 1 {
			more = fmt.Sprintf(" (and %d more page problems)", len(probs)-1)
		}
		return &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: probs[0] + more +
			"; `checkinbot check` lists every problem; restore the file from a backup"}
	}
	return nil
}

// examine opens the existing file at path read-only and checks it without
// writing to it: bbolt's meta pages, the length against the last commit,
// every page (when walk, or the file is small enough), our format marker
// and the schema version. It holds a shared lock through the read-only
// bbolt handle while it reads, so no writer changes the file underneath;
// a writer holding the file is ErrLocked. Pages are checked on the file's
// bytes before bbolt's map is read. With page problems it returns them and
// no handle; otherwise the read-only handle, still locked.
func examine(path string, forOpen bool) (*bolt.DB, []string, error) {
	var db *bolt.DB
	err := guard(func() error {
		fi, err := os.Stat(path)
		if err == nil && fi.Size() == 0 {
			return &store.FileError{Kind: store.ErrEmpty}
		}
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true, OpenFile: openExisting})
		return err
	})
	var fe *store.FileError
	switch {
	case errors.As(err, &fe) && fe.Kind != store.ErrEmpty:
		return nil, nil, fe // a FileError naming path already
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, &store.FileError{Path: path, Kind: store.ErrLocked, Reason: "stop the other process first (a running serve, or a check)"}
	case err != nil && isOSError(err):
		return nil, nil, classify(path, err, "open")
	}
	// Other failures (an empty or damaged file) are classified below.
	keep := false
	defer func() {
		if db != nil && !keep {
			db.Close()
		}
	}()
	f, ferr := os.Open(path)
	if ferr != nil {
		return nil, nil, classify(path, ferr, "read")
	}
	defer f.Close()
	fi, ferr := f.Stat()
	if ferr != nil {
		return nil, nil, classify(path, ferr, "read")
	}
	h, herr := readHeader(f, fi.Size())
	if herr != nil {
		herr.(*store.FileError).Path = path
		return nil, nil, herr
	}
	if !forOpen || fi.Size() <= maxOpenWalk {
		if probs := walkPages(f, h); len(probs) > 0 {
			return nil, probs, nil
		}
	}
	if err != nil || db == nil {
		return nil, nil, &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: "bbolt cannot open it", Err: err}
	}
	if err := guard(func() error { return db.View(checkIdentity) }); err != nil {
		return nil, nil, classify(path, err, "read")
	}
	keep = true
	return db, nil, nil
}

// openExisting is bbolt's file opener that never creates a file and never
// hands bbolt an empty one (which bbolt would initialise as new).
func openExisting(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag&^os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		f.Close()
		return nil, &store.FileError{Path: name, Kind: store.ErrEmpty}
	}
	return f, nil
}

// openBolt opens an inspected file with bbolt, turning faults and panics
// into errors.
func openBolt(path string, readOnly bool) (*bolt.DB, error) {
	var db *bolt.DB
	err := guard(func() error {
		var err error
		opt := &bolt.Options{Timeout: time.Second, ReadOnly: readOnly, OpenFile: openExisting}
		if !readOnly {
			opt.InitialMmapSize = mmapSize // an online backup must not stall writers (ops.go)
		}
		db, err = bolt.Open(path, 0o600, opt)
		return err
	})
	return db, err
}

// maxPlausibleSchema bounds the schema versions taken for a newer
// release's: one schema change a day for a century stays below it.
const maxPlausibleSchema = 1 << 16

// checkIdentity tells our files from another program's bbolt file and
// refuses a schema newer than this binary. It runs before anything is
// written to the file.
func checkIdentity(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return &store.FileError{Kind: store.ErrForeign, Reason: fmt.Sprintf("a bbolt database without checkinbot's meta bucket "+
			"(%s): another program's file", describeBuckets(tx))}
	}
	marker := meta.Get(keyFormat)
	if marker != nil && !bytes.Equal(marker, formatMarker) {
		return &store.FileError{Kind: store.ErrForeign, Reason: "a bbolt database marked as another program's"}
	}
	if marker == nil {
		// A file of the first release: ours only if it has our schema key
		// and nothing but our buckets.
		known := map[string]bool{}
		for _, b := range allBuckets {
			known[string(b)] = true
		}
		var strange []string
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !known[string(name)] {
				strange = append(strange, fmt.Sprintf("%q", name))
			}
			return nil
		})
		if len(strange) > 0 || meta.Get(keySchema) == nil {
			return &store.FileError{Kind: store.ErrForeign, Reason: fmt.Sprintf("a bbolt database without checkinbot's format marker "+
				"(%s): another program's file", describeBuckets(tx))}
		}
	}
	v := meta.Get(keySchema)
	switch {
	case v == nil:
		return &store.FileError{Kind: store.ErrCorrupt, Reason: "its schema version is missing"}
	case len(v) != 8:
		return &store.FileError{Kind: store.ErrCorrupt, Reason: "its schema version is unreadable"}
	case binary.BigEndian.Uint64(v) > maxPlausibleSchema:
		// A flipped high bit, not a release from the future.
		return &store.FileError{Kind: store.ErrCorrupt, Reason: fmt.Sprintf("its schema version %d is no version any checkinbot wrote",
			binary.BigEndian.Uint64(v))}
	case binary.BigEndian.Uint64(v) > SchemaVersion:
		return &store.FileError{Kind: store.ErrFutureSchema, Reason: fmt.Sprintf("schema version %d is newer than this binary supports (%d): "+
			"upgrade checkinbot; do not run an older version on this file", binary.BigEndian.Uint64(v), SchemaVersion)}
	}
	return nil
}

// describeBuckets names a few top-level buckets of a foreign file, to help
// the operator recognise it.
func describeBuckets(tx *bolt.Tx) string {
	var names []string
	n := 0
	tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if n++; len(names) < 3 {
			names = append(names, fmt.Sprintf("%q", name))
		}
		return nil
	})
	switch {
	case n == 0:
		return "it has no buckets at all"
	case n > len(names):
		return fmt.Sprintf("it has %d buckets: %s, …", n, joinComma(names))
	}
	return "its buckets: " + joinComma(names)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// errFault marks a memory fault or panic while bbolt read the file.
var errFault = errors.New("reading the file crashed")

// guard runs fn on a goroutine of its own with SetPanicOnFault, so a page
// fault on the memory-mapped file (a SIGBUS past the end of a truncated
// file) or a bbolt panic on a damaged page becomes an error instead of
// killing the process. SetPanicOnFault is per goroutine, hence the
// goroutine.
func guard(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%w: %v", errFault, p)
			}
		}()
		done <- fn()
	}()
	return <-done
}

func isOSError(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

// classify turns an error met while opening path into a FileError naming
// the exact reason.
func classify(path string, err error, doing string) error {
	var fe *store.FileError
	if errors.As(err, &fe) {
		if fe.Path == "" {
			fe.Path = path
		}
		return fe
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return &store.FileError{Path: path, Kind: store.ErrLocked, Reason: "stop the other process first (a running serve, or a check)"}
	}
	var pe *fs.PathError
	cause := err
	if errors.As(err, &pe) {
		cause = pe.Err // the path is in our message already
	}
	dir := filepath.Dir(path)
	switch {
	case errors.Is(err, syscall.EROFS):
		return &store.FileError{Path: path, Kind: store.ErrReadOnly, Reason: "the file system is mounted read-only", Err: cause}
	case errors.Is(err, fs.ErrPermission) && doing == "create":
		return &store.FileError{Path: path, Kind: store.ErrReadOnly, Reason: "cannot create it in " + dir +
			": give the service's user write access to the directory", Err: cause}
	case errors.Is(err, fs.ErrPermission) && doing == "open":
		if f, rerr := os.Open(path); rerr == nil {
			f.Close()
			return &store.FileError{Path: path, Kind: store.ErrReadOnly, Reason: "the file is read-only for this user: " +
				"give the service's user write access to it", Err: cause}
		}
		return &store.FileError{Path: path, Kind: store.ErrNoAccess, Reason: "give the service's user read and write access to it", Err: cause}
	case errors.Is(err, fs.ErrPermission):
		return &store.FileError{Path: path, Kind: store.ErrNoAccess, Reason: "give the service's user access to it and its directory", Err: cause}
	case errors.Is(err, syscall.EISDIR):
		return &store.FileError{Path: path, Kind: store.ErrIsDir, Err: cause}
	case errors.Is(err, syscall.ENOSPC):
		return &store.FileError{Path: path, Kind: store.ErrIO, Reason: "the disk is full", Err: cause}
	case errors.Is(err, errFault):
		return &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: "damaged pages (" + doing + ")", Err: cause}
	case isOSError(err):
		return &store.FileError{Path: path, Kind: store.ErrIO, Reason: doing, Err: cause}
	}
	return &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: doing, Err: cause}
}

// migrate creates the buckets of a new file, stamps the format marker and
// upgrades older schemas. It runs only on files checkIdentity accepted.
func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyFormat) == nil {
			if err := meta.Put(keyFormat, formatMarker); err != nil {
				return err
			}
		}
		v := meta.Get(keySchema)
		switch {
		case v == nil:
			return meta.Put(keySchema, u64(SchemaVersion))
		case len(v) != 8:
			return &store.FileError{Kind: store.ErrCorrupt, Reason: "its schema version is unreadable"}
		case binary.BigEndian.Uint64(v) > SchemaVersion:
			return &store.FileError{Kind: store.ErrFutureSchema, Reason: fmt.Sprintf("schema version %d is newer than this binary supports (%d): upgrade checkinbot",
				binary.BigEndian.Uint64(v), SchemaVersion)}
		}
		// Migrations from older versions run here, one step at a time, as
		// the schema evolves. Version 1 is the first; version 2 added the
		// case indexes (by embassy, by embassy × status) and the registrant
		// index, which only this version keeps in step — so an older binary
		// must refuse a version 2 file rather than let them drift.
		if err := backfillCaseIndex(tx); err != nil { // the embassy API's case indexes (cases.go)
			return err
		}
		// Version 3 added the event indexes (events.go) and the registrant
		// counters (stats.go), built here once from an older file.
		if err := backfillEventIndex(tx); err != nil {
			return err
		}
		if err := backfillStatCounts(tx); err != nil { // and the registrant counters (stats.go)
			return err
		}
		if err := backfillRollCallCounts(tx); err != nil { // and the roll-call counters (rollcall_counts.go)
			return err
		}
		if err := backfillRollCallLists(tx); err != nil { // and lists
			return err
		}
		// Version 4 may hold sealed records (sealing.go), which an older
		// binary would misread: older files are upgraded in place here, in
		// clear, and sealed by initKeys when a master key is given.
		// Version 5 added the due index of pending deliveries, built from
		// the sealed rows by buildPendingDue once the keys are loaded: an
		// older binary would not keep it in step.
		if binary.BigEndian.Uint64(v) < SchemaVersion {
			return meta.Put(keySchema, u64(SchemaVersion))
		}
		return nil
	})
}
