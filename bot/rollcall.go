package bot

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/store"
)

// RollCallStore is what roll calls need of storage beyond Store: the
// registrant index (to find who is asked) and the roll-call bookkeeping.
// *boltstore.Store implements it; the runner finds it on its Store.
type RollCallStore interface {
	Registrants(embassy string, status store.RegistrantStatus, cursor string, limit int) (store.RegistrantPage, error)
	CreateRollCall(rc store.RollCall) error
	RollCall(id string) (store.RollCallReport, bool, error)
	RollCallMember(id, key string) (store.MemberState, bool, error)
	RollCallMembers(id string, m store.MemberState) ([]string, error)
	DueRollCalls(now time.Time) ([]store.RollCall, error)
	CloseRollCall(id string) error
}

// RollCallRequest is an embassy's request that everyone in an area check
// in now (DESIGN §2 item 9).
type RollCallRequest struct {
	EmbassyID string
	Country   string // ISO 3166 alpha-2, required
	City      string // optional; compared case-insensitively
	// Texts is the question in the embassy's own words, by language tag
	// ("en", "th" …); each member gets their language's, else English,
	// else the first by tag. Empty: the RollCall template of the locales,
	// naming Area.
	Texts map[string]string
	// Area names the place in the template's question; defaults to the
	// city, else the country.
	Area     string
	Deadline time.Time
}

// Roll-call limits.
const (
	// MaxRollCallDeadline is how far ahead a deadline may be.
	MaxRollCallDeadline = 7 * 24 * time.Hour
	// MaxRollCallText bounds the embassy's question, in characters.
	MaxRollCallText = 1000
	// rollCallWorkers prompts members in parallel, so their commits share
	// group commits.
	rollCallWorkers = 32
)

// ErrNoRollCalls: the runner's store keeps no roll calls.
var ErrNoRollCalls = errors.New("bot: this store keeps no roll calls")

func (r *Runner) rollCalls() (RollCallStore, error) {
	rs, ok := r.Store.(RollCallStore)
	if !ok {
		return nil, ErrNoRollCalls
	}
	return rs, nil
}

// Validate checks a request at now; its error has an errs code
// (EINVALID) and names the field.
func (q RollCallRequest) Validate(now time.Time) error {
	bad := func(field, reason string) error {
		return errs.Errorf(errs.EINVALID, "roll call: %s: %s", field, reason)
	}
	switch {
	case q.EmbassyID == "":
		return bad("embassy", "missing")
	case len(q.Country) != 2 || strings.ToUpper(q.Country) != q.Country || !isLetters(q.Country):
		return bad("country", "want an ISO 3166 alpha-2 code such as \"TH\"")
	case !q.Deadline.After(now):
		return bad("deadline", "is not in the future")
	case q.Deadline.Sub(now) > MaxRollCallDeadline:
		return bad("deadline", "is more than a week ahead")
	}
	for lang, text := range q.Texts {
		if n := utf8.RuneCountInString(text); n == 0 || n > MaxRollCallText {
			return bad("text."+lang, fmt.Sprintf("must have 1 to %d characters", MaxRollCallText))
		}
	}
	return nil
}

func isLetters(s string) bool {
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// StartRollCall is CreateRollCall then PromptRollCall: it returns when
// every prompt is committed (and handed to its channel). The API does the
// two apart, so it can answer before the prompts are out.
func (r *Runner) StartRollCall(ctx context.Context, q RollCallRequest) (store.RollCall, error) {
	rc, err := r.CreateRollCall(q)
	if err != nil {
		return rc, err
	}
	return rc, r.PromptRollCall(ctx, rc)
}

// CreateRollCall validates q and records a roll call of every active (or
// overdue) registrant of the embassy in the country (and city), each
// listed and not yet asked. It is quick (one read of the registrant index,
// one transaction) so a caller can answer at once and prompt afterwards;
// a roll call recorded but never prompted is prompted by ResumeRollCalls
// at the next start.
func (r *Runner) CreateRollCall(q RollCallRequest) (store.RollCall, error) {
	rs, err := r.rollCalls()
	if err != nil {
		return store.RollCall{}, err
	}
	now := r.Now()
	if err := q.Validate(now); err != nil {
		return store.RollCall{}, err
	}
	rc := store.RollCall{ID: newRollCallID(), EmbassyID: q.EmbassyID, Country: q.Country, City: q.City,
		CreatedAt: now.UTC(), Deadline: q.Deadline.UTC(), Texts: q.Texts, Area: q.Area}
	for _, status := range []store.RegistrantStatus{store.StatusActive, store.StatusOverdue} {
		cursor := ""
		for {
			page, err := rs.Registrants(q.EmbassyID, status, cursor, store.MaxPage)
			if err != nil {
				return store.RollCall{}, err
			}
			for _, row := range page.Rows {
				if row.Country == q.Country && (q.City == "" || strings.EqualFold(row.City, q.City)) {
					rc.Members = append(rc.Members, row.Key)
				}
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	if err := rs.CreateRollCall(rc); err != nil {
		return store.RollCall{}, err
	}
	return rc, nil
}

// PromptRollCall prompts every member of rc (as CreateRollCall returned
// it) through the runner — one transaction per member, the KindRollCall
// input, replies at reminder priority through the send queue — and
// returns when every prompt is committed. The members' answers, and the
// rollcall.missed events at the deadline (FireRollCalls), follow. Give it
// a context that outlives any request: a cancelled one leaves the rest
// listed, for ResumeRollCalls.
func (r *Runner) PromptRollCall(ctx context.Context, rc store.RollCall) error {
	q := RollCallRequest{EmbassyID: rc.EmbassyID, Country: rc.Country, City: rc.City, Texts: rc.Texts, Area: rc.Area}
	return r.promptMembers(ctx, rc, q, rc.Members)
}

// promptMembers prompts keys for rc, a few at a time.
func (r *Runner) promptMembers(ctx context.Context, rc store.RollCall, q RollCallRequest, keys []string) error {
	area := q.Area
	if area == "" {
		area = q.City
	}
	if area == "" {
		area = q.Country
	}
	work := make(chan string)
	var mu sync.Mutex
	var errList []error
	var wg sync.WaitGroup
	for range min(rollCallWorkers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				if err := r.promptMember(ctx, rc, q.Texts, area, key); err != nil {
					mu.Lock()
					errList = append(errList, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if len(errList) > 0 {
		return fmt.Errorf("roll call %s: %d of %d prompts not recorded (they stay listed; ResumeRollCalls retries): %w",
			rc.ID, len(errList), len(keys), errList[0])
	}
	return ctx.Err()
}

func (r *Runner) promptMember(ctx context.Context, rc store.RollCall, texts map[string]string, area, key string) error {
	st, found, err := r.Store.Registrant(key)
	if err != nil || !found {
		return err
	}
	in := dialogs.Input{Kind: dialogs.KindRollCall, Key: key, Deadline: rc.Deadline, Area: area,
		RollCallID: rc.ID, Text: pickText(texts, st.Lang)}
	return r.run(ctx, key, "", in, store.Envelope{Channel: st.Channel, Address: st.Address, Scheduled: true})
}

// pickText is the text for lang: its own, else English, else the first
// by tag; "" when there are none (the template is used).
func pickText(texts map[string]string, lang string) string {
	if t, ok := texts[lang]; ok {
		return t
	}
	if t, ok := texts["en"]; ok {
		return t
	}
	tags := make([]string, 0, len(texts))
	for tag := range texts {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	if len(tags) == 0 {
		return ""
	}
	return texts[tags[0]]
}

// RollCall reports where a roll call's members stand.
func (r *Runner) RollCall(id string) (store.RollCallReport, bool, error) {
	rs, err := r.rollCalls()
	if err != nil {
		return store.RollCallReport{}, false, err
	}
	return rs.RollCall(id)
}

// FireRollCalls works every roll call whose deadline has passed: each
// member prompted and still unanswered gets rollcall.missed, one event per
// person on their case (KindRollCallMissed, in their turn, so an answer
// racing the deadline is seen), then the roll call closes. The scheduler
// calls it on every pass; after a crash it picks up where it stopped (a
// member marked missed is not escalated twice).
func (r *Runner) FireRollCalls(ctx context.Context) (int, error) {
	rs, err := r.rollCalls()
	if err != nil {
		return 0, nil // nothing to do for a store without roll calls
	}
	due, err := rs.DueRollCalls(r.Now())
	if err != nil {
		return 0, err
	}
	missed := 0
	var errList []error
	for _, rc := range due {
		keys, err := rs.RollCallMembers(rc.ID, store.MemberPrompted)
		if err != nil {
			errList = append(errList, err)
			continue
		}
		failed := false
		for _, key := range keys {
			if beforeMiss != nil {
				beforeMiss(key)
			}
			n, err := r.missMember(ctx, rs, rc, key)
			missed += n
			if err != nil {
				errList, failed = append(errList, err), true
			}
		}
		if !failed {
			if err := rs.CloseRollCall(rc.ID); err != nil {
				errList = append(errList, err)
			}
		}
	}
	return missed, errors.Join(errList...)
}

// beforeMiss, when set (tests), runs between reading who is unanswered
// and taking each one's turn: where a late answer can slip in.
var beforeMiss func(key string)

// missMember escalates one member if, in their turn, they are still
// prompted and unanswered.
func (r *Runner) missMember(ctx context.Context, rs RollCallStore, rc store.RollCall, key string) (int, error) {
	unlock := r.order.lock(key)
	defer unlock()
	m, found, err := rs.RollCallMember(rc.ID, key)
	if err != nil || !found || m != store.MemberPrompted {
		return 0, err
	}
	st, found, err := r.Store.Registrant(key)
	if err != nil || !found {
		return 0, err
	}
	in := dialogs.Input{Kind: dialogs.KindRollCallMissed, Key: key, RollCallID: rc.ID, Deadline: rc.Deadline}
	env := store.Envelope{Channel: st.Channel, Address: st.Address, Scheduled: true}
	if err := r.runHeld(ctx, key, "", in, env, time.Now()); err != nil {
		return 0, err
	}
	return 1, nil
}

// ResumeRollCalls prompts, after a restart, the members of open roll calls
// whose prompt was never committed (the service stopped half-way through
// StartRollCall), in the roll call's own words (its texts are stored with
// it). A store without roll calls has nothing to resume.
func (r *Runner) ResumeRollCalls(ctx context.Context) error {
	rs, err := r.rollCalls()
	if err != nil {
		return nil
	}
	now := r.Now()
	open, err := rs.DueRollCalls(now.Add(MaxRollCallDeadline + 24*time.Hour))
	if err != nil {
		return err
	}
	var errList []error
	for _, rc := range open {
		if !rc.Deadline.After(now) {
			continue
		}
		keys, err := rs.RollCallMembers(rc.ID, store.MemberListed)
		if err == nil {
			err = r.promptMembers(ctx, rc, RollCallRequest{Country: rc.Country, City: rc.City, Texts: rc.Texts, Area: rc.Area}, keys)
		}
		errList = append(errList, err)
	}
	return errors.Join(errList...)
}

// newRollCallID returns "rc_" and 16 random base32 characters.
func newRollCallID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "rc_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
