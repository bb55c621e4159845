package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedFile writes a real data file at path holding n registrants with due
// timers, an open case each for every third one, outbox events, routed
// pending rows and an audit chain: several pages of every kind.
func seedFile(tb testing.TB, path string, n int) {
	tb.Helper()
	s, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	// Different registrants in parallel: they share commits.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(1000+i))
			_, err := s.Process(key, fmt.Sprintf("telegram:%d", i), t0, result(func(st *dialogs.State, r *dialogs.Result) {
				st.Key, st.Status, st.Lang = key, dialogs.StatusActive, "en"
				st.Address, st.Handle = secretPhone, secretPhone
				st.Timer = t0.Add(time.Duration(i+1) * time.Minute)
				r.Audit = []string{"checkin"}
				if i%3 == 0 {
					r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical,
						EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
				}
			}))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := s.Route(t0, func(store.Event) []store.Target { return []store.Target{{Endpoint: "ep1", Critical: true}} }); err != nil {
		tb.Fatal(err)
	}
}

// secretPhone is personal data every seeded registrant carries: no output
// about the file may contain it.
const secretPhone = "+85512345678"

func fileHash(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(b)
}

// usedPage returns the id of a page of the given bbolt type ("leaf",
// "branch", "freelist") that is in use, and the page size.
func usedPage(tb testing.TB, path, typ string) (int, int) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	id := -1
	db.View(func(tx *bolt.Tx) error {
		for i := 2; ; i++ {
			info, err := tx.Page(i)
			if err != nil || info == nil {
				return err
			}
			if info.Type == typ {
				id = i
				return nil
			}
		}
	})
	if id < 0 {
		tb.Fatalf("no %s page in use", typ)
	}
	return id, db.Info().PageSize
}

// flipBit inverts one bit of the file at off.
func flipBit(tb testing.TB, path string, off int64, bit uint) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		tb.Fatal(err)
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, off); err != nil {
		tb.Fatal(err)
	}
}

// metaInForce returns which meta page (0 or 1) holds the newest commit.
func metaInForce(tb testing.TB, path string) int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	h, err := readHeader(f, fi.Size())
	if err != nil {
		tb.Fatal(err)
	}
	return h.meta.page
}

// boltFile writes a bbolt database at path with fill, as another program
// (or an earlier checkinbot) would.
func boltFile(tb testing.TB, path string, fill func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		tb.Fatal(err)
	}
	db.Close()
}

func putIn(bucket, key string, val []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), val)
	}
}

func all(fns ...func(tx *bolt.Tx) error) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for _, fn := range fns {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	}
}

// firstRelease creates the buckets the first release created, without a
// format marker.
func firstRelease(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// fault is one way a data file can be wrong, and the error Open owes.
type fault struct {
	name string
	// setup prepares dir and returns the path to open.
	setup func(t *testing.T, dir string) string
	want  error
	// unprivileged: file modes decide the outcome, so the open runs as an
	// ordinary user even when the tests run as root.
	unprivileged bool
}

var faults = []fault{
	{"zero-length file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		os.WriteFile(p, nil, 0o600)
		return p
	}, store.ErrEmpty, false},
	{"random bytes", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		b := make([]byte, 64<<10)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		os.WriteFile(p, b, 0o600)
		return p
	}, store.ErrForeign, false},
	{"text file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		os.WriteFile(p, []byte(strings.Repeat("this is not a database ", 1000)), 0o600)
		return p
	}, store.ErrForeign, false},
	{"another program's bbolt file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		boltFile(t, p, all(putIn("widgets", "w1", []byte("blue")), putIn("users", "u1", []byte("x"))))
		return p
	}, store.ErrForeign, false},
	{"bbolt file with a meta bucket and schema key but foreign buckets", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		boltFile(t, p, all(putIn("meta", "schema", u64(1)), putIn("widgets", "w1", []byte("blue"))))
		return p
	}, store.ErrForeign, false},
	{"bbolt file marked by another program", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		boltFile(t, p, all(putIn("meta", "schema", u64(1)), putIn("meta", "format", []byte("widgetd"))))
		return p
	}, store.ErrForeign, false},
	{"empty bbolt file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		boltFile(t, p, func(*bolt.Tx) error { return nil })
		return p
	}, store.ErrForeign, false},
	{"truncated to half", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		os.Truncate(p, usedSize(t, p)/2) // the file is preallocated beyond its data (see mmapSize)
		return p
	}, store.ErrTruncated, false},
	{"truncated to one page", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		os.Truncate(p, int64(os.Getpagesize()))
		return p
	}, store.ErrTruncated, false},
	{"truncated inside the first page", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 10)
		os.Truncate(p, 40)
		return p
	}, store.ErrTruncated, false},
	{"a flipped bit in a leaf page's header", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		id, ps := usedPage(t, p, "leaf")
		flipBit(t, p, int64(id*ps)+8, 0) // page type leaf → invalid
		return p
	}, store.ErrCorrupt, false},
	{"a flipped bit in a leaf page's element table", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		id, ps := usedPage(t, p, "leaf")
		flipBit(t, p, int64(id*ps)+16+8+2, 4) // element 0's key size += 1 MiB
		return p
	}, store.ErrCorrupt, false},
	{"a flipped bit in a branch page", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		id, ps := usedPage(t, p, "branch")
		flipBit(t, p, int64(id*ps)+16+8+1, 6) // element 0's child page id
		return p
	}, store.ErrCorrupt, false},
	{"a flipped bit in the freelist", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 300)
		id, ps := usedPage(t, p, "freelist")
		flipBit(t, p, int64(id*ps)+16+3, 2) // first free page id
		return p
	}, store.ErrCorrupt, false},
	{"a flipped bit in the newest meta page", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 30)
		flipBit(t, p, int64(metaInForce(t, p)*os.Getpagesize())+16+40, 0) // its page count
		return p
	}, store.ErrCorrupt, false},
	{"both meta pages damaged", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 30)
		flipBit(t, p, 16+40, 0)
		flipBit(t, p, int64(os.Getpagesize())+16+40, 0)
		return p
	}, store.ErrCorrupt, false},
	{"future schema", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 3)
		boltFile(t, p, putIn("meta", "schema", u64(SchemaVersion+1)))
		return p
	}, store.ErrFutureSchema, false},
	{"unreadable schema", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 3)
		boltFile(t, p, putIn("meta", "schema", []byte("one")))
		return p
	}, store.ErrCorrupt, false},
	{"read-only file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 3)
		os.Chmod(p, 0o444)
		return p
	}, store.ErrReadOnly, true},
	{"read-only directory", func(t *testing.T, dir string) string {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return filepath.Join(dir, "checkinbot.db")
	}, store.ErrReadOnly, true},
	{"unreadable file", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		seedFile(t, p, 3)
		os.Chmod(p, 0o200)
		return p
	}, store.ErrNoAccess, true},
	{"missing directory", func(t *testing.T, dir string) string {
		return filepath.Join(dir, "no-such-dir", "checkinbot.db")
	}, store.ErrNoDir, false},
	{"directory is a file", func(t *testing.T, dir string) string {
		os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o600)
		return filepath.Join(dir, "data", "checkinbot.db")
	}, store.ErrNoDir, false},
	{"path is a directory", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		os.Mkdir(p, 0o700)
		return p
	}, store.ErrIsDir, false},
	{"locked by another open", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "checkinbot.db")
		s, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return p
	}, store.ErrLocked, false},
}

// TestOpenRefusesFaults: every fault is refused with its kind and the file
// name, nothing panics, and the file is left exactly as it was: never
// repaired, re-created or stamped; where there was no file, none appears.
func TestOpenRefusesFaults(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			path := f.setup(t, dir)
			before, existed := snapshot(t, path)
			var err error
			if f.unprivileged {
				err = openUnprivileged(t, path)
			} else {
				var s *Store
				s, err = Open(path)
				if s != nil {
					s.Close()
				}
			}
			if !errors.Is(err, f.want) {
				t.Fatalf("got %v, want %v", err, f.want)
			}
			var fe *store.FileError
			if !f.unprivileged && !errors.As(err, &fe) {
				t.Errorf("%T is not a *FileError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine") {
				t.Errorf("message must be one line naming %s: %q", path, msg)
			}
			after, exists := snapshot(t, path)
			if existed != exists || before != after {
				t.Errorf("the file changed: existed %v → %v", existed, exists)
			}
			if f.want != store.ErrLocked {
				leftovers(t, filepath.Dir(path), filepath.Base(path))
			}
			t.Log(msg)
		})
	}
}

// snapshot hashes a regular file at path; a directory or nothing hashes
// as zero.
func snapshot(t *testing.T, path string) ([32]byte, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return [32]byte{}, false
	}
	if fi.IsDir() || fi.Mode().Perm()&0o400 == 0 {
		return [32]byte{byte(fi.Mode().Perm())}, true
	}
	return fileHash(t, path), true
}

// leftovers fails if a temporary creation file was left in dir.
func leftovers(t *testing.T, dir, base string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+base) {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

// openUnprivileged opens path as an ordinary user: in this process when it
// is one, else in a child test process running as nobody (root ignores
// file modes). The child's verdict comes back as the error kind and text.
func openUnprivileged(t *testing.T, path string) error {
	t.Helper()
	if os.Geteuid() != 0 {
		s, err := Open(path)
		if s != nil {
			s.Close()
		}
		return err
	}
	// nobody must reach the binary and the file.
	for d := filepath.Dir(path); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(filepath.Dir(path)), "store.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenHelperProcess$")
	cmd.Env = append(os.Environ(), "STORE_HELPER_OPEN="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	kind, msg, _ := strings.Cut(line, "\t")
	for _, k := range kinds {
		if k.Error() == kind {
			return fmt.Errorf("%w (in a child process): %s", k, msg)
		}
	}
	if kind == "ok" {
		return nil
	}
	return errors.New(msg)
}

var kinds = []error{store.ErrLocked, store.ErrEmpty, store.ErrForeign, store.ErrTruncated, store.ErrCorrupt, store.ErrFutureSchema, store.ErrReadOnly, store.ErrNoDir, store.ErrIsDir, store.ErrNoAccess, store.ErrIO, store.ErrNotFound}

// TestOpenHelperProcess is the child of openUnprivileged; it does nothing
// in a normal run.
func TestOpenHelperProcess(t *testing.T) {
	path := os.Getenv("STORE_HELPER_OPEN")
	if path == "" {
		t.Skip("helper process for openUnprivileged")
	}
	s, err := Open(path)
	if err == nil {
		s.Close()
		fmt.Println("ok\t")
		return
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			fmt.Printf("%s\t%s\n", k, err)
			return
		}
	}
	fmt.Printf("?\t%s\n", err)
}

// TestOpenAcceptsReadOnlyDirWithFile: an existing writable file in a
// read-only directory is fine: bbolt needs no other file.
func TestOpenAcceptsReadOnlyDirWithFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "checkinbot.db")
	seedFile(t, p, 3)
	os.Chmod(p, 0o666)
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if err := openUnprivileged(t, p); err != nil {
		t.Fatal(err)
	}
}

// TestOpenOlderMetaPageDamaged: a damaged meta page that holds the older
// of the two commits costs nothing (bbolt uses the newer one, and the next
// commit rewrites the damaged page), so the file opens with all its data.
func TestOpenOlderMetaPageDamaged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	seedFile(t, p, 30)
	old := 1 - metaInForce(t, p)
	flipBit(t, p, int64(old*os.Getpagesize())+16+40, 0)
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if keys, err := s.Due(t0.Add(time.Hour)); err != nil || len(keys) != 30 {
		t.Errorf("after the fallback: %d registrants due, %v", len(keys), err)
	}
}

// TestOpenKeepsFilesOfTheFirstRelease: a file written before the format
// marker existed (meta bucket with a schema key, our buckets only) opens
// with its data and is stamped.
func TestOpenKeepsFilesOfTheFirstRelease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	st, _ := json.Marshal(dialogs.State{Key: "k1", Status: dialogs.StatusActive, Timer: t0})
	boltFile(t, p, all(firstRelease, putIn("meta", "schema", u64(1)), putIn("registrants", "k1", st),
		putIn("due", string(dueKey(t0, "k1")), nil)))
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, found, err := s.Registrant("k1"); err != nil || !found || got.Status != dialogs.StatusActive {
		t.Errorf("registrant of the first release: %+v %v %v", got, found, err)
	}
	s.Close()
	db, _ := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta).Get(keyFormat); !bytes.Equal(m, formatMarker) {
			t.Errorf("not stamped: %q", m)
		}
		return nil
	})
}

// TestOpenCreatesOnlyWhereNothingExists: a new file appears complete and
// stamped, with no temporary left; when a file appears at the path while
// Open is creating one (another process, a race), the existing file is
// what Open judges — an empty one is refused, not taken for new. Both with
// hard links and on a file system without them.
func TestOpenCreatesOnlyWhereNothingExists(t *testing.T) {
	noLinks := func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	for _, tc := range []struct {
		name string
		link func(old, new string) error
	}{{"hard links", os.Link}, {"no hard links", noLinks}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(l func(string, string) error) { linkFile = l }(linkFile)
			linkFile = tc.link
			dir := t.TempDir()
			p := filepath.Join(dir, "checkinbot.db")
			s, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			leftovers(t, dir, "checkinbot.db")
			db, _ := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
			db.View(func(tx *bolt.Tx) error {
				if m := tx.Bucket(bucketMeta).Get(keyFormat); !bytes.Equal(m, formatMarker) {
					t.Errorf("new file not stamped: %q", m)
				}
				return nil
			})
			db.Close()

			// The race: an empty file appears at the path just before ours
			// would be put there.
			race := filepath.Join(dir, "race.db")
			linkFile = func(old, new string) error {
				os.WriteFile(new, nil, 0o600)
				return tc.link(old, new)
			}
			if s, err := Open(race); !errors.Is(err, store.ErrEmpty) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("a file appearing during creation: %v, want ErrEmpty", err)
			}
			if fi, err := os.Stat(race); err != nil || fi.Size() != 0 {
				t.Errorf("the other file was touched: %v %v", fi, err)
			}
			leftovers(t, dir, "race.db")
		})
	}
}

// TestOpenSurvivesAnyBitFlip is the property behind the table: whatever
// single bit of a page in use of a real data file is flipped, Open does not crash, and
// either refuses the file — as corrupt, truncated or foreign, leaving it
// byte-identical — or opens it (bbolt has no checksums on data pages, so a
// flipped bit inside a stored value is not visible to it; `check` decodes
// every record). Bits are drawn with a fixed seed over the whole file.
func TestOpenSurvivesAnyBitFlip(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	seedFile(t, pristine, 40)
	data, err := os.ReadFile(pristine)
	if err != nil {
		t.Fatal(err)
	}
	flips := 400
	if testing.Short() {
		flips = 60
	}
	pages, ps := usedPages(t, pristine)
	r := rand.New(rand.NewPCG(7, uint64(len(data))))
	refused := map[error]int{}
	for i := range flips {
		off, bit := pages[r.IntN(len(pages))]*ps+r.IntN(ps), uint(r.IntN(8))
		p := filepath.Join(dir, fmt.Sprintf("flip%d.db", i))
		b := bytes.Clone(data)
		b[off] ^= 1 << bit
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p)
		if err == nil {
			s.Close()
			refused[nil]++
			continue
		}
		kind := errKind(err)
		refused[kind]++
		if kind != store.ErrCorrupt && kind != store.ErrTruncated && kind != store.ErrForeign {
			t.Errorf("byte %d bit %d: %v", off, bit, err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
			t.Errorf("byte %d bit %d: refused file was changed", off, bit)
		}
		os.Remove(p)
	}
	t.Logf("%d flips in %d pages in use of a %d-byte file: %d opened, %d corrupt, %d truncated, %d foreign", flips, len(pages), len(data),
		refused[nil], refused[store.ErrCorrupt], refused[store.ErrTruncated], refused[store.ErrForeign])
}

func errKind(err error) error {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// usedPages lists the pages of the file that are not free (meta pages
// included), and the page size.
func usedPages(tb testing.TB, path string) ([]int, int) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var ids []int
	db.View(func(tx *bolt.Tx) error {
		for i := 0; ; i++ {
			info, err := tx.Page(i)
			if err != nil || info == nil {
				return err
			}
			if info.Type != "free" {
				for j := 0; j <= info.OverflowCount; j++ {
					ids = append(ids, i+j)
				}
				i += info.OverflowCount
			}
		}
	})
	return ids, db.Info().PageSize
}

// BenchmarkOpen measures what the checks cost at start-up against a bare
// bbolt open of the same file, in the same run: files of n registrants
// (about 700-byte records, due entries, an audit entry each), written
// with bbolt directly.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		p := filepath.Join(b.TempDir(), "checkinbot.db")
		s, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		rec, _ := json.Marshal(dialogs.State{Status: dialogs.StatusActive, Lang: "en", Address: secretPhone, Handle: secretPhone,
			Profile: dialogs.Profile{}, Timer: t0, CheckinTime: "09:00", LastCheckin: t0, NextDue: t0})
		rec = append(rec[:len(rec)-1], []byte(`,"pad":"`+strings.Repeat("x", 700-len(rec))+`"}`)...)
		db, _ := bolt.Open(p, 0o600, nil)
		for i := 0; i < n; i += 5000 {
			db.Update(func(tx *bolt.Tx) error {
				for j := i; j < min(i+5000, n); j++ {
					key := store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(j))
					tx.Bucket(bucketRegistrants).Put([]byte(key), rec)
					tx.Bucket(bucketDue).Put(dueKey(t0.Add(time.Duration(j)*time.Second), key), nil)
					tx.Bucket(bucketAudit).Put(u64(uint64(j+1)), rec[:200])
				}
				return nil
			})
		}
		db.Close()
		fi, _ := os.Stat(p)
		b.Run(fmt.Sprintf("registrants=%d/MiB=%d/store.Open", n, fi.Size()>>20), func(b *testing.B) {
			for b.Loop() {
				s, err := Open(p)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
		b.Run(fmt.Sprintf("registrants=%d/MiB=%d/bolt.Open", n, fi.Size()>>20), func(b *testing.B) {
			for b.Loop() {
				db, err := bolt.Open(p, 0o600, &bolt.Options{Timeout: time.Second})
				if err != nil {
					b.Fatal(err)
				}
				db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, formatMarker) })
				db.Close()
			}
		})
	}
}

// TestCreatedOnlyForANewFile: Created is what serve's warning about an
// empty data directory rests on — true once, when the file was made.
func TestCreatedOnlyForANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	for i, want := range []bool{true, false} {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if s.Created() != want {
			t.Errorf("open %d: Created() = %v, want %v", i+1, s.Created(), want)
		}
		s.Close()
	}
}
