package boltstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// The privacy of the data file at rest (issue 13): scripted conversations
// through the real engine, runner and an encrypted store, then the file
// and a backup read as a thief would read them.

var privacyPepper = []byte("privacy-test-pepper-0123456789abcdef")

// keywords are secret words that pass the refusal rules, per language.
var keywords = map[string]string{
	"en": "blue mango", "ms": "mangga biru", "id": "kucing hitam", "th": "กล้วยหอม", "vi": "chuối xanh",
	"fil": "dilaw na payong", "my": "ငှက်ပျောနီ", "km": "ចេកខៀវ", "lo": "ໝາກມ່ວງ", "zh": "香蕉苹果",
}

// fakeChat is the channel: it records replies and accepts every response
// at once, with platform message ids, as Telegram would.
type fakeChat struct {
	mu      sync.Mutex
	replies map[string][]dialogs.Reply
	next    int
}

func (c *fakeChat) Send(_ context.Context, address string, r bot.Response) error {
	c.mu.Lock()
	c.replies[address] = append(c.replies[address], r.Replies...)
	var ids []string
	for range r.Replies {
		c.next++
		ids = append(ids, strconv.Itoa(900000+c.next))
	}
	c.mu.Unlock()
	go r.Report(bot.Receipt{SentIDs: ids})
	return nil
}

func (c *fakeChat) last(address string) []dialogs.Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replies[address]
}

// citizen is one person of a script and everything they type that the
// file must never show.
type citizen struct {
	lang, address, handle, name, passport, employer, contact, phone, city, keyword string
	lat, lon                                                                       float64
}

func newCitizen(lang string, n int) citizen {
	// Fixed widths: no citizen's value is a prefix of another's.
	return citizen{lang: lang, address: fmt.Sprintf("77%08d", 123400+n), handle: fmt.Sprintf("@siti_%s_%02d", lang, n),
		name: fmt.Sprintf("Siti %sRahmawati %s%02d", strings.Repeat("Nur ", (n*7)%19), strings.ToUpper(lang), n), passport: fmt.Sprintf("A%07d", 4410000+n),
		employer: fmt.Sprintf("Golden Orchid %sGarments %02d", strings.Repeat("Co ", (n*11)%20), n), phone: fmt.Sprintf("+8559876%04d", n),
		contact: fmt.Sprintf("Aunty Mei %02d", n), city: fmt.Sprintf("Sihanoukville %sWard %02d", strings.Repeat("Kampong ", (n*5)%9), n), keyword: keywords[lang],
		lat: 10.62731 + float64(n)/1e4, lon: 103.52219 + float64(n)/1e4}
}

// secrets are the strings a thief must not find: every value the script
// typed, and the registrant's chat id and handle.
func (c citizen) secrets() []string {
	return []string{c.address, c.handle, c.name, c.passport, c.employer, c.contact, c.phone, c.city, c.keyword,
		strconv.FormatFloat(c.lat, 'f', -1, 64), strconv.FormatFloat(c.lon, 'f', -1, 64)}
}

type script struct {
	t      *testing.T
	runner *bot.Runner
	chat   *fakeChat
	store  *boltstore.Store
	msg    int
	events []store.Event
	mu     sync.Mutex
}

func newScript(t *testing.T, s *boltstore.Store) *script {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	eng := &dialogs.Engine{Catalog: cat, Directory: cfg.Directory(), Policy: cfg.Policy(), Pepper: privacyPepper}
	sc := &script{t: t, store: s, chat: &fakeChat{replies: map[string][]dialogs.Reply{}}}
	sc.runner = bot.NewRunner(eng, s, privacyPepper)
	sc.runner.ReplyFloor = 0
	now := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	sc.runner.Now = func() time.Time { return now }
	sc.runner.OnEvents = func(evs []store.Event) { sc.mu.Lock(); sc.events = append(sc.events, evs...); sc.mu.Unlock() }
	sc.runner.Register("telegram", sc.chat)
	return sc
}

func (sc *script) send(c citizen, kind dialogs.InputKind, text string, lat, lon float64) {
	sc.t.Helper()
	sc.msg++
	in := bot.Inbound{Channel: "telegram", Address: c.address, MessageID: fmt.Sprintf("u%d", sc.msg), DeleteID: strconv.Itoa(sc.msg),
		Handle: c.handle, LangHint: c.lang, Kind: kind, Text: text, Lat: lat, Lon: lon}
	if err := sc.runner.Handle(context.Background(), in); err != nil {
		sc.t.Fatalf("%s: %q: %v", c.lang, text, err)
	}
}

func (sc *script) say(c citizen, text string) {
	sc.t.Helper()
	sc.send(c, dialogs.KindText, text, 0, 0)
}

// pressFirst presses the first button of the latest reply that has any
// (Yes, in a confirmation).
func (sc *script) pressFirst(c citizen) {
	sc.t.Helper()
	rs := sc.chat.last(c.address)
	for i := len(rs) - 1; i >= 0; i-- {
		if len(rs[i].Buttons) > 0 {
			sc.send(c, dialogs.KindButton, rs[i].Buttons[0].Data, 0, 0)
			return
		}
	}
	sc.t.Fatalf("%s: no button to press", c.lang)
}

func (sc *script) register(c citizen) {
	sc.t.Helper()
	for _, a := range []string{"/start", c.lang, "1", "MY", "KH", c.city, c.name, c.passport, c.employer,
		c.contact + " " + c.phone, "24h", "09:00", c.keyword, c.keyword, "1"} {
		sc.say(c, a)
	}
	st, found, err := sc.store.Registrant(store.UserKey(privacyPepper, "telegram", c.address))
	if err != nil || !found || st.Status != dialogs.StatusActive || st.Profile.Passport != c.passport || st.Profile.Employer == "" {
		sc.t.Fatalf("%s: registration did not complete with every field (%v, %v)", c.lang, found, err)
	}
}

// settle waits until every reply was acknowledged and the purge list has
// been worked (as the runner's deleter would), so only what must remain
// remains.
func (sc *script) settle(purge bool) {
	sc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		items, err := sc.store.PendingSends("")
		if err != nil {
			sc.t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sc.t.Fatalf("%d send-queue rows never acknowledged", len(items))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if purge {
		rows, err := sc.store.PurgeRows()
		if err != nil {
			sc.t.Fatal(err)
		}
		if err := sc.store.SettlePurges(rows, nil); err != nil {
			sc.t.Fatal(err)
		}
	}
}

// deliverAll routes every event and records it delivered, as the
// deliverer would after a successful POST.
func deliverAll(t *testing.T, s *boltstore.Store, now time.Time) {
	t.Helper()
	if _, err := s.Route(now, func(store.Event) []store.Target { return []store.Target{{Endpoint: "embassy"}} }); err != nil {
		t.Fatal(err)
	}
	pend, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var as []store.Attempt
	for _, d := range pend {
		as = append(as, store.Attempt{Endpoint: d.Endpoint, Seq: d.Seq, Outcome: escalation.AttemptDelivered})
	}
	if err := s.RecordAttempts(now, as); err != nil {
		t.Fatal(err)
	}
}

// forms are the ways a string can sit in a file: as is, JSON-escaped
// (ASCII-only escaping too), and as Go's JSON writes a float.
func forms(s string) [][]byte {
	out := [][]byte{[]byte(s)}
	j, _ := json.Marshal(s)
	out = append(out, j[1:len(j)-1])
	var ascii strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			ascii.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := (r-0x10000)>>10+0xD800, (r-0x10000)&0x3FF+0xDC00
			fmt.Fprintf(&ascii, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&ascii, `\u%04x`, r)
		}
	}
	if a := ascii.String(); a != s {
		out = append(out, []byte(a), []byte(strings.ToUpper(a)))
	}
	return out
}

// duressMarks are the field names and event types that would tell a
// duress registrant (or any event's type) apart in clear.
func duressMarks() []string {
	m := []string{`"do_not_contact"`, `"hidden"`, `"shown"`, `"keyword"`, `"len"`, `"former_keywords"`, `"profile"`, `"types"`}
	for _, t := range escalation.AllTypes {
		m = append(m, string(t))
	}
	return m
}

// auditInClear: the audit trail is another branch's work (issue 13 item
// 4, the `audit` helper): until its neutral, sealed entries land, its
// entries name event types in clear, so the raw-byte scan for types skips
// them. Set to false once audit entries are neutral.
const auditInClear = false

// TestNothingPersonalInClear runs the whole script in every language —
// registration with every optional field, a check-in, a duress check-in,
// an SOS with a location, a covert stop, a covert delete, and a second
// citizen's real delete — on an encrypted store, then searches the raw
// data file and an online backup for every value the script typed (and
// every event type and duress field name), and opens every sealed value
// with every key the file holds to show nothing of the deleted citizen
// opens any more.
func TestNothingPersonalInClear(t *testing.T) {
	ring := testKeyring(t, 9)
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring, AuditKey: ring.Current.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	sc := newScript(t, s)
	var kept, deleted []citizen
	for i, lang := range locales.Order {
		a, b := newCitizen(lang, 2*i), newCitizen(lang, 2*i+1)
		sc.register(a)
		sc.say(a, "/checkin")
		sc.say(a, "/checkin "+a.keyword)
		sc.say(a, "/sos")
		sc.send(a, dialogs.KindLocation, "", a.lat, a.lon)
		sc.say(a, "/stop "+a.keyword)
		sc.pressFirst(a)
		sc.say(a, "/delete "+a.keyword)
		sc.pressFirst(a)
		kept = append(kept, a)

		sc.register(b)
		sc.say(b, "/checkin")
		sc.send(b, dialogs.KindLocation, "", b.lat, b.lon)
		deleted = append(deleted, b)
	}
	// What was delivered before a /delete stays sealed under the
	// citizen's key; a backup from before holds their whole record.
	sc.settle(false)
	deliverAll(t, s, time.Date(2026, 3, 2, 2, 30, 0, 0, time.UTC))
	before := filepath.Join(t.TempDir(), "before.db")
	writeBackup(t, s, before)
	for _, b := range deleted {
		sc.say(b, "/delete")
		sc.pressFirst(b)
	}
	sc.settle(false)
	types := map[string]int{}
	for _, e := range sc.events {
		types[e.Type]++
	}
	for _, want := range []string{escalation.TypeDuressTriggered, escalation.TypeSOSRaised, escalation.TypeRegistrationWithdrawn} {
		if types[want] < len(locales.Order) {
			t.Fatalf("the script did not do what it says: %d %s events in %v", types[want], want, types)
		}
	}
	for _, a := range kept {
		st, found, _ := s.Registrant(store.UserKey(privacyPepper, "telegram", a.address))
		if !found || st.Hidden == nil {
			t.Fatalf("%s: the covertly deleted registration was not kept", a.lang)
		}
	}
	for _, b := range deleted {
		if _, found, _ := s.Registrant(store.UserKey(privacyPepper, "telegram", b.address)); found {
			t.Fatalf("%s: the deleted registration is still there", b.lang)
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	writeBackup(t, s, backup)

	var all []citizen
	all = append(append(all, kept...), deleted...)
	scan := func(file string) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range all {
			for _, v := range c.secrets() {
				for _, form := range forms(v) {
					if bytes.Contains(raw, form) {
						t.Errorf("%s: %s's %q is in clear (as %q)", filepath.Base(file), c.lang, v, form)
					}
				}
			}
		}
		for _, m := range duressMarks() {
			if bytes.Contains(raw, []byte(m)) && !(auditInClear && strings.Contains(m, ".")) {
				t.Errorf("%s: %q is in clear", filepath.Base(file), m)
			}
		}
	}
	scan(backup)

	// The deleted citizens' data opens while something owed needs it (the
	// withdrawal event until delivered, the clean-up of their chat); once
	// delivered and worked, and Prune ran, nothing of theirs opens.
	sc.settle(true)
	deliverAll(t, s, time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC))
	if _, err := s.Prune(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan(path)
	opened, unopened, err := boltstore.OpenEverything(path, path, ring)
	if err != nil {
		t.Fatal(err)
	}
	if unopened == 0 {
		t.Fatal("every value opened: the deleted citizens' events were not shredded")
	}
	// The backup from before the /delete, opened with every key the file
	// holds now: the deleted citizens' records in it no longer open.
	old, _, err := boltstore.OpenEverything(before, path, ring)
	if err != nil {
		t.Fatal(err)
	}
	opened = append(opened, old...)
	for _, ov := range opened {
		for _, b := range deleted {
			for _, v := range b.secrets() {
				for _, form := range forms(v) {
					if bytes.Contains(ov.Plain, form) {
						t.Errorf("after /delete, %s's %q still opens with the master key (bucket %s)", b.lang, v, ov.Bucket)
					}
				}
			}
		}
	}
	// The covertly deleted citizens are still readable by the service.
	found := 0
	for _, ov := range opened {
		if bytes.Contains(ov.Plain, []byte(kept[0].passport)) {
			found++
		}
	}
	if found == 0 {
		t.Error("the covertly deleted registration does not open: the scan proves nothing")
	}
}

// runShape runs one citizen per language through register, a check-in,
// and then last (given the citizen), on a new encrypted store, and returns
// the file's clear shape for buckets.
func runShape(t *testing.T, buckets []string, wantType string, last func(sc *script, c citizen)) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	ring := testKeyring(t, 3)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring, AuditKey: ring.Current.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	sc := newScript(t, s)
	var keys []string
	// Three citizens per language, names of many lengths: records fall at
	// every offset within their size class.
	for i, lang := range locales.Order {
		for j := range 3 {
			c := newCitizen(lang, 3*i+j)
			sc.register(c)
			sc.say(c, "/checkin")
			last(sc, c)
			keys = append(keys, store.UserKey(privacyPepper, "telegram", c.address))
		}
	}
	sc.settle(false)
	n := 0
	for _, e := range sc.events {
		if e.Type == wantType {
			n++
		}
	}
	if wantType != "" && n != 3*len(locales.Order) {
		t.Fatalf("the script raised %d %s events, not one per language", n, wantType)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	shape, err := boltstore.ClearShape(path, buckets, keys)
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// registrantSide are the buckets a citizen's own activity writes.
var registrantSide = []string{"registrants", "due", "sendq", "purge", "inbound", "regindex", "regindex_user", "keys",
	"rollcall_members", "rollcall_user", "audit", "stat_counts"}

// escalationSide are the buckets an escalation writes.
var escalationSide = []string{"cases", "case_index", "case_status_index", "outbox", "pending", "delivered", "event_acks"}

// otherWords are words of the same script as each keyword, of the same
// length, that are no keyword: the twin's check-in.
var otherWords = map[string]string{
	"en": "grey lemon", "ms": "nanas hijau", "id": "burung putih", "th": "มะละกอ", "vi": "táo đỏ xanh",
	"fil": "pula na sapatos", "my": "သရက်သီးဝါ", "km": "ម្នាស់ក្រហ", "lo": "ໝາກກ້ວຍ", "zh": "西瓜葡萄",
}

// TestDuressLeavesNoClearTrace: two fresh stores, the same script, except
// that one citizen's check-in carries the keyword and the twin's other
// words of the same script. Every registrant-side bucket shows the same
// keys (user keys as placeholders), counts and stored lengths: the file
// cannot tell the duress check-in apart. The escalation it raises adds a
// case and an outbox row; those look exactly like an SOS's: no type,
// registrant or time in clear, the same lengths.
func TestDuressLeavesNoClearTrace(t *testing.T) {
	duress := runShape(t, registrantSide, escalation.TypeDuressTriggered, func(sc *script, c citizen) { sc.say(c, "/checkin "+c.keyword) })
	normal := runShape(t, registrantSide, "", func(sc *script, c citizen) { sc.say(c, "/checkin "+otherWords[c.lang]) })
	compareShapes(t, "duress vs normal check-in (registrant side)", duress, normal)

	byDuress := runShape(t, escalationSide, escalation.TypeDuressTriggered, func(sc *script, c citizen) { sc.say(c, "/checkin "+c.keyword) })
	bySOS := runShape(t, escalationSide, escalation.TypeSOSRaised, func(sc *script, c citizen) { sc.say(c, "/sos") })
	compareShapes(t, "duress vs SOS escalation (escalation side)", byDuress, bySOS)
}

func compareShapes(t *testing.T, what string, a, b []string) {
	t.Helper()
	if len(a) == 0 {
		t.Fatalf("%s: empty shape", what)
	}
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return
	}
	n := max(len(a), len(b))
	shown := 0
	for i := 0; i < n && shown < 10; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			t.Errorf("%s: line %d differs:\n  %s\n  %s", what, i, x, y)
			shown++
		}
	}
	if shown == 0 {
		t.Errorf("%s: %d vs %d lines", what, len(a), len(b))
	}
}

func writeBackup(t *testing.T, s *boltstore.Store, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.WriteBackup(f, nil); err != nil {
		t.Fatal(err)
	}
}
