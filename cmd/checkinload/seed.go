package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
	"github.com/checkinbot/checkinbot/webhook"
)

// The files of a data directory (-dir). seed.db is the seeded data file,
// never opened by the App: each run copies it to checkinbot.db, so one seed
// serves any number of days ("seed once, run many"). seed.json holds what
// opens it: the generated master key, pepper and webhook signing key of
// this load test (secrets of a throw-away file, mode 0600).
const (
	seedFile = "seed.db"
	metaFile = "seed.json"
	appFile  = "checkinbot.db" // app.Open's name in DataDir
)

// seedMeta is seed.json.
type seedMeta struct {
	Version     int       `json:"version"`
	N           int       `json:"registrants"`
	MasterKey   string    `json:"master_key"`
	Pepper      string    `json:"pepper"`
	WebhookKey  []byte    `json:"webhook_key"`
	Created     time.Time `json:"created"`
	SeedSeconds float64   `json:"seed_seconds"`    // registrations written
	DeliverSecs float64   `json:"deliver_seconds"` // their registration.created delivered
	FileMB      float64   `json:"seed_file_mb"`    // seed.db's size
	// Written: every registration is in seed.db (saved before delivery,
	// so a delivery that fails is resumed, not the 37 minutes of writes
	// a million took here).
	Written  bool `json:"written"`
	Complete bool `json:"complete"` // delivered too: the seed is ready
}

const metaVersion = 1

// loadMeta reads dir's seed.json. found is false when there is none (a new
// seed is to be made); a seed for another N, one whose writes did not
// finish or an unreadable file is an error naming the file and the reason.
// A seed written but not yet delivered is found: the caller resumes its
// delivery (m.Complete is false).
func loadMeta(dir string, n int) (m seedMeta, found bool, err error) {
	path := filepath.Join(dir, metaFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return seedMeta{}, false, nil
	}
	if err != nil {
		return seedMeta{}, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return seedMeta{}, false, fmt.Errorf("%s: not a seed description: %w", path, err)
	}
	switch {
	case m.Version != metaVersion:
		return seedMeta{}, false, fmt.Errorf("%s: seed format %d, this tool reads %d: seed again in a new -dir", path, m.Version, metaVersion)
	case !m.Written && !m.Complete: // complete implies written (seeds from before "written")
		return seedMeta{}, false, fmt.Errorf("%s: the seed in this directory did not finish: remove the directory and seed again", path)
	case m.N != n:
		return seedMeta{}, false, fmt.Errorf("%s: this directory holds a seed of %d registrants, not -n %d: use another -dir", path, m.N, n)
	}
	if _, err := os.Stat(filepath.Join(dir, seedFile)); err != nil {
		return seedMeta{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, seedFile), err)
	}
	return m, true, nil
}

// newMeta generates the secrets of a new seed.
func newMeta(n int) seedMeta {
	_, master := seal.GenerateMasterKey()
	wh := make([]byte, 32)
	rand.Read(wh)
	return seedMeta{Version: metaVersion, N: n, MasterKey: master, Pepper: randomText(32), WebhookKey: wh, Created: time.Now().UTC()}
}

func (m seedMeta) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, metaFile))
}

func (m seedMeta) keyring() (*seal.Keyring, error) {
	k, err := seal.ParseMasterKey(m.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("%s: master_key: %w", metaFile, err)
	}
	return &seal.Keyring{Current: k}, nil
}

// registration is the inputs of one full registration, in order.
func registration() []dialogs.Input {
	in := make([]dialogs.Input, 0, len(fullRegistration)+1)
	for _, text := range fullRegistration {
		in = append(in, dialogs.Input{Kind: dialogs.KindText, Text: text})
	}
	return append(in, dialogs.Input{Kind: dialogs.KindLocation, Lat: 11.5564, Lon: 104.9282})
}

// register runs one citizen's full registration through the real engine,
// in memory, and returns the one result that stores it: the final state
// with every escalation and audit entry the steps produced, in order. The
// replies are not kept: seeding delivers nothing to a chat.
func register(eng *dialogs.Engine, key string, chat int64, now time.Time) (dialogs.Result, error) {
	var st dialogs.State
	var all dialogs.Result
	addr := strconv.FormatInt(chat, 10)
	for i, in := range registration() {
		in.Key, in.Channel, in.Address, in.LangHint = key, "telegram", addr, "en"
		in.Handle = "@load" + strconv.FormatInt(chat-chatBase, 10)
		res := eng.Handle(st, in, now)
		if res.Erase {
			return dialogs.Result{}, fmt.Errorf("registration step %d erased the record", i)
		}
		st = res.State
		all.Escalations = append(all.Escalations, res.Escalations...)
		all.Audit = append(all.Audit, res.Audit...)
	}
	if st.Status != dialogs.StatusActive || !st.Keyword.Set() {
		return dialogs.Result{}, fmt.Errorf("registration did not finish: status %q, step %q", st.Status, st.Step)
	}
	all.State = st
	return all, nil
}

// seedStore writes n registrants into path through the real store API:
// each citizen's registration runs through the real engine in memory and is
// stored with one Store.Process (state, registration.created and every
// other escalation in the outbox, audit entries: what the runner's 19
// transactions leave, minus the replies), workers at a time so the store
// groups them into shared commits. It then delivers the outbox to the sink
// so the day does not queue behind the registrations. It returns the
// seconds each half took.
func seedStore(ctx context.Context, p Params, c *config.Config, secrets config.Secrets, path string,
	logf func(string, ...any)) (write float64, err error) {
	cat, err := locales.Load()
	if err != nil {
		return 0, err
	}
	eng := &dialogs.Engine{Catalog: cat, Directory: c.Directory(), Policy: c.Policy(), Pepper: secrets.Pepper}
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: secrets.Keyring})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	start := time.Now()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range p.Workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(p.N) || ctx.Err() != nil {
					return
				}
				if i > 0 && i%50000 == 0 {
					logf("registered %d (%.0f/s)", i, float64(i)/time.Since(start).Seconds())
				}
				chat := chatBase + i
				key := store.UserKey(secrets.Pepper, "telegram", strconv.FormatInt(chat, 10))
				now := time.Now()
				res, err := register(eng, key, chat, now)
				if err == nil {
					_, err = s.Process(key, "", now, func(dialogs.State, bool) dialogs.Result { return res })
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("citizen %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return 0, firstErr
	}
	write = time.Since(start).Seconds()
	logf("registered %d in %.1fs (%.0f/s)", p.N, write, float64(p.N)/write)
	return write, nil
}

// deliverSeed hands the seed's outbox (registration.created and the
// updates, 3 per citizen) to the sink, so the day does not queue behind
// it, and returns the seconds it took. No arrival for 10 minutes is a
// stall, an error.
func deliverSeed(ctx context.Context, p Params, c *config.Config, secrets config.Secrets, sink *sinkRecorder, path string,
	logf func(string, ...any)) (float64, error) {
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: secrets.Keyring})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	start := time.Now()
	pol := c.DeliveryPolicy()
	pol.HeartbeatEvery = 0
	d := &webhook.Deliverer{Store: s, Endpoints: secrets.Endpoints, Policy: pol,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	dctx, stopDeliver := context.WithCancel(ctx)
	delivered := make(chan error, 1)
	go func() { delivered <- d.Run(dctx) }()
	// Done when the store owes nothing (a resumed delivery's earlier
	// arrivals were counted by another process). Generous: the delivery
	// rate on a loaded machine is what it is; a stall (the backlog not
	// shrinking for 10 minutes) is the failure. At a million (3 million
	// events) nothing arrived in the first 2 minutes.
	last, lastN := time.Now(), -1
	for ctx.Err() == nil {
		n, err := s.Backlog()
		if err != nil {
			stopDeliver()
			<-delivered
			return 0, err
		}
		if n == 0 || time.Since(last) > 10*time.Minute {
			lastN = n
			break
		}
		if n != lastN {
			if lastN >= 0 {
				logf("delivering the seed: %d events still owed, %d registrations arrived", n, sink.registrations())
			}
			last, lastN = time.Now(), n
		}
		d.Nudge()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	stopDeliver()
	<-delivered
	if lastN != 0 {
		return 0, fmt.Errorf("%d events still owed after %.0f s (delivery stalled or interrupted; run again with the same -dir to resume)",
			lastN, time.Since(start).Seconds())
	}
	deliver := time.Since(start).Seconds()
	logf("the embassy received %d registrations in %.1fs", p.N, deliver)
	return deliver, nil
}

// copyFile copies the seed to the App's data file (synced): the day runs
// on a copy, the seed stays as it was.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// bbolt holds an exclusive flock on an open data file: a day still
	// running in this directory must not have its file overwritten.
	if err := syscall.Flock(int(out.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		out.Close()
		return fmt.Errorf("%s is in use (another run in this -dir?): %w", dst, err)
	}
	if err := out.Truncate(0); err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// schedule moves every citizen's next prompt to their hour in the
// compressed day (the real store API, one transaction each, workers at a
// time) and resets the ladder, on the App's own store before it runs.
func schedule(s *boltstore.Store, pepper []byte, citizens []citizen, dayStart time.Time, workers int) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(citizens)) {
					return
				}
				cz := &citizens[i]
				key := store.UserKey(pepper, "telegram", strconv.FormatInt(cz.chat, 10))
				at := dayStart.Add(cz.offset)
				missing := false
				_, err := s.Process(key, "", time.Now(), func(prev dialogs.State, found bool) dialogs.Result {
					if missing = !found; missing {
						return dialogs.Result{State: prev, Erase: true} // keep no blank record
					}
					st := prev
					st.NextDue, st.Timer, st.Ladder = at, at, 0
					return dialogs.Result{State: st}
				})
				if err == nil && missing {
					err = fmt.Errorf("registrant %d (chat %d) is not in the data file", i, cz.chat)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
