package whatsapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// fakeClient stands in for *whatsmeow.Client and records what was sent.
type fakeClient struct {
	mu   sync.Mutex
	sent []sent
	fail int // fail this many sends first
	n    int
}

type sent struct {
	to  types.JID
	msg *waE2E.Message
	at  time.Time
	id  types.MessageID
}

func (f *fakeClient) SendMessage(_ context.Context, to types.JID, m *waE2E.Message, _ ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return whatsmeow.SendResponse{}, whatsmeow.ErrNotConnected
	}
	f.n++
	id := types.MessageID("OUT" + string(rune('A'+f.n)))
	f.sent = append(f.sent, sent{to: to, msg: m, at: time.Now(), id: id})
	return whatsmeow.SendResponse{ID: id}, nil
}

func (f *fakeClient) BuildRevoke(chat, sender types.JID, id types.MessageID) *waE2E.Message {
	return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(),
		Key: &waCommon.MessageKey{RemoteJID: proto.String(chat.String()), FromMe: proto.Bool(true), ID: proto.String(id)}}}
}

func (f *fakeClient) MarkRead(context.Context, []types.MessageID, time.Time, types.JID, types.JID, ...types.ReceiptType) error {
	return nil
}

func (f *fakeClient) all() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

type fakeLIDs map[string]types.JID

func (l fakeLIDs) GetPNForLID(_ context.Context, lid types.JID) (types.JID, error) {
	if pn, ok := l[lid.User]; ok {
		return pn, nil
	}
	return types.JID{}, errors.New("unknown lid")
}

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu  sync.Mutex
	ins []bot.Inbound
}

func (r *recorder) Handle(_ context.Context, in bot.Inbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ins = append(r.ins, in)
	return nil
}

var (
	phone  = types.NewJID("60123456789", types.DefaultUserServer)
	lid    = types.NewJID("98765432101234", types.HiddenUserServer)
	group  = types.NewJID("120363000000000000", types.GroupServer)
	status = types.StatusBroadcastJID
)

func msg(chat, sender types.JID, id string, m *waE2E.Message, mod func(*types.MessageInfo)) *events.Message {
	e := &events.Message{Info: types.MessageInfo{MessageSource: types.MessageSource{Chat: chat, Sender: sender}, ID: types.MessageID(id)}, Message: m}
	if mod != nil {
		mod(&e.Info)
	}
	return e
}

// TestInboundMapping is the table of hand-built whatsmeow events in and
// engine inputs out, in the style of courier's handlertest.
func TestInboundMapping(t *testing.T) {
	text := &waE2E.Message{Conversation: proto.String("ok")}
	cases := []struct {
		name string
		in   *events.Message
		want *bot.Inbound // nil: nothing reaches the engine
	}{
		{"text", msg(phone, phone, "A1", text, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA1", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindText, Text: "ok"}},
		{"extended text", msg(phone, phone, "A2", &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("help me")}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA2", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindText, Text: "help me"}},
		{"location", msg(phone, phone, "A3", &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(11.55), DegreesLongitude: proto.Float64(104.92)}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA3", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindLocation, Lat: 11.55, Lon: 104.92}},
		{"image", msg(phone, phone, "A4", &waE2E.Message{ImageMessage: &waE2E.ImageMessage{}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA4", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindMedia}},
		{"sticker", msg(phone, phone, "A5", &waE2E.Message{StickerMessage: &waE2E.StickerMessage{}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA5", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindMedia}},
		{"own message", msg(phone, phone, "A6", text, func(i *types.MessageInfo) { i.IsFromMe = true }), nil},
		{"group message", msg(group, phone, "A7", text, func(i *types.MessageInfo) { i.IsGroup = true }), nil},
		{"status update", msg(status, phone, "A8", text, nil), nil},
		{"LID sender with phone alternative", msg(lid, lid, "A9", text, func(i *types.MessageInfo) { i.SenderAlt = phone }),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mA9", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindText, Text: "ok"}},
		{"LID sender resolved by the store", msg(lid, lid, "B1", text, nil),
			&bot.Inbound{Channel: Name, Address: "855123456789", MessageID: "mB1", Handle: "+855123456789", LangHint: "km", Kind: dialogs.KindText, Text: "ok"}},
		{"image with caption", msg(phone, phone, "B3", &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("I'm fine blue mango")}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mB3", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindText, Text: "I'm fine blue mango"}},
		{"edited message", msg(phone, phone, "B4", &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
			EditedMessage: &waE2E.Message{Conversation: proto.String("ok blue mango")}}}, nil),
			&bot.Inbound{Channel: Name, Address: "60123456789", MessageID: "mB4", Handle: "+60123456789", LangHint: "ms", Kind: dialogs.KindText, Text: "ok blue mango"}},
		{"reaction", msg(phone, phone, "B5", &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Text: proto.String("👍")}}, nil), nil},
		{"unresolvable LID", msg(types.NewJID("111", types.HiddenUserServer), types.NewJID("111", types.HiddenUserServer), "B2", text, nil), nil},
	}
	lids := fakeLIDs{lid.User: types.NewJID("855123456789", types.DefaultUserServer)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			ch := New(Options{Client: &fakeClient{}, LIDs: lids}, bot.InboxOf(rec))
			ch.HandleEvent(c.in)
			switch {
			case c.want == nil && len(rec.ins) != 0:
				t.Errorf("reached the engine: %+v", rec.ins[0])
			case c.want != nil && (len(rec.ins) != 1 || rec.ins[0] != *c.want):
				t.Errorf("got %+v, want %+v", rec.ins, *c.want)
			}
		})
	}
}

// TestOutboundMenusPaceAndRevokes: menus are numbered, one person's
// messages are paced, a failed send is retried, each response reports its
// acceptance with the message id, and Delete revokes that message.
func TestOutboundMenusPaceAndRevokes(t *testing.T) {
	client := &fakeClient{fail: 1}
	ch := New(Options{Client: client, PerRecipient: 150 * time.Millisecond, Global: 10 * time.Millisecond}, bot.InboxOf(&recorder{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	receipts := make(chan bot.Receipt, 3)
	report := func(rc bot.Receipt) { receipts <- rc }
	ch.Send(ctx, "60123456789", bot.Response{Priority: bot.PriorityReply, Done: report, Replies: []dialogs.Reply{
		{Text: "Hello."}, {Text: "Which language?", Buttons: []dialogs.Button{{Label: "English", Data: "en"}, {Label: "Bahasa Melayu", Data: "ms"}}}}})
	ch.Send(ctx, "60123456789", bot.Response{Priority: bot.PriorityReply, Done: report, Replies: []dialogs.Reply{{Text: "Choose a secret word.", Sensitive: true}}})
	ch.Send(ctx, "60123456789", bot.Response{Priority: bot.PriorityReply, Done: report, Replies: []dialogs.Reply{{Text: "Registered."}}})
	var got []bot.Receipt
	for len(got) < 3 {
		select {
		case rc := <-receipts:
			if rc.Err != nil || len(rc.SentIDs) != 1 {
				t.Fatalf("receipt %+v", rc)
			}
			got = append(got, rc)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 3 responses reported accepted", len(got))
		}
	}
	if err := ch.Delete(ctx, "60123456789", got[1].SentIDs[0]); err != nil {
		t.Fatal(err)
	}
	sent := client.all()
	if len(sent) != 4 {
		t.Fatalf("sent %d messages", len(sent))
	}
	if want := "Hello.\n\nWhich language?\n\n1. English\n2. Bahasa Melayu"; sent[0].msg.GetConversation() != want {
		t.Errorf("menu %q, want %q", sent[0].msg.GetConversation(), want)
	}
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].at.Sub(sent[i-1].at); gap < 150*time.Millisecond {
			t.Errorf("messages %d and %d to one person %s apart", i-1, i, gap)
		}
	}
	for i := range 3 {
		if got[i].SentIDs[0] != string(sent[i].id) {
			t.Errorf("receipt %d names %s, sent %s", i, got[i].SentIDs[0], sent[i].id)
		}
	}
	revoke := sent[3].msg.GetProtocolMessage()
	if revoke.GetType() != waE2E.ProtocolMessage_REVOKE || revoke.GetKey().GetID() != string(sent[1].id) {
		t.Errorf("the secret-word prompt %s was not revoked: %v", sent[1].id, sent[3].msg)
	}
}

func TestHealthStates(t *testing.T) {
	var logs bytes.Buffer
	ch := New(Options{Client: &fakeClient{}, Log: slogTo(&logs)}, bot.InboxOf(&recorder{}))
	if ok, _ := ch.Health().Ready(); ok {
		t.Error("ready before connecting")
	}
	ch.HandleEvent(&events.Connected{})
	if ok, _ := ch.Health().Ready(); !ok {
		t.Error("not ready when connected")
	}
	ch.HandleEvent(&events.LoggedOut{Reason: events.ConnectFailureLoggedOut})
	ok, detail := ch.Health().Ready()
	if ok || ch.Health().State() != StateLoggedOut || !strings.Contains(detail, "checkinbot whatsapp link") {
		t.Errorf("logged out: %v %q", ok, detail)
	}
	ch.HandleEvent(&events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Hour})
	if ch.Health().State() != StateBanned || !strings.Contains(logs.String(), "banned") {
		t.Errorf("ban not surfaced: %s", logs.String())
	}
}

func TestDeviceStoreOpensAndUpgrades(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, err := OpenDevices(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := c.GetFirstDevice(ctx)
	if err != nil || dev.ID != nil {
		t.Fatalf("new store: %v %v", dev, err)
	}
	c.Close()
	c, err = OpenDevices(ctx, dir) // reopening runs the upgrade again, harmlessly
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := OpenDevices(ctx, filepath.Join(dir, "missing", "dir")); err == nil {
		t.Error("opened a store in a missing directory")
	}
}

// fakeLinker plays the pairing side of whatsmeow.
type fakeLinker struct {
	items     []whatsmeow.QRChannelItem
	connect   error
	paired    string
	hold      bool // never close the channel (for timeouts)
	disconnct bool
}

func (f *fakeLinker) GetQRChannel(context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	ch := make(chan whatsmeow.QRChannelItem, len(f.items))
	for _, it := range f.items {
		ch <- it
	}
	if !f.hold {
		close(ch)
	}
	return ch, nil
}
func (f *fakeLinker) Connect() error { return f.connect }
func (f *fakeLinker) PairPhone(_ context.Context, phone string, _ bool, _ whatsmeow.PairClientType, _ string) (string, error) {
	f.paired = phone
	return "ABCD-EFGH", nil
}
func (f *fakeLinker) Disconnect() { f.disconnct = true }

func TestLink(t *testing.T) {
	ctx := context.Background()
	c, err := OpenDevices(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fresh := c.NewDevice()
	linked := c.NewDevice()
	linked.ID = &phone
	code := whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@abc,def,ghi"}
	cases := []struct {
		name    string
		device  bool // linked already
		phone   string
		linker  *fakeLinker
		wantErr error
		wantOut string
	}{
		{"OKQR", false, "", &fakeLinker{items: []whatsmeow.QRChannelItem{code, whatsmeow.QRChannelSuccess}}, nil, "Scan this"},
		{"OKPairingCode", false, "+60123456789", &fakeLinker{items: []whatsmeow.QRChannelItem{code, whatsmeow.QRChannelSuccess}}, nil, "ABCD-EFGH"},
		{"ErrAlreadyLinked", true, "", &fakeLinker{}, ErrAlreadyLinked, ""},
		{"ErrBadPhone", false, "60123456789", &fakeLinker{}, ErrBadPhone, ""},
		{"ErrBadPhoneLetters", false, "+60 12 345", &fakeLinker{}, ErrBadPhone, ""},
		{"ErrTimeout", false, "", &fakeLinker{items: []whatsmeow.QRChannelItem{code}, hold: true}, ErrLinkTimeout, ""},
		{"ErrTimeoutEvent", false, "", &fakeLinker{items: []whatsmeow.QRChannelItem{code, whatsmeow.QRChannelTimeout}}, ErrLinkTimeout, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev := fresh
			if tc.device {
				dev = linked
			}
			var out bytes.Buffer
			err := Link(ctx, dev, tc.linker, tc.phone, &out, 200*time.Millisecond)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
		})
	}
	if err := Link(ctx, fresh, &fakeLinker{connect: errors.New("dial tcp: no route")}, "", &bytes.Buffer{}, time.Second); err == nil ||
		!strings.Contains(err.Error(), "cannot reach WhatsApp") {
		t.Errorf("offline: %v", err)
	}
}

func slogTo(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, nil))
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDuplicateMessageHandledOnce: WhatsApp redelivers a message (say,
// after a crash before the ack); the store's de-duplication by message id
// makes the second one a no-op, through the real runner.
func TestDuplicateMessageHandledOnce(t *testing.T) {
	r := testkit.Runner(t)
	client := &fakeClient{}
	ch := New(Options{Client: client, PerRecipient: time.Millisecond, Global: time.Millisecond}, r)
	r.Register(Name, ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	hello := msg(phone, phone, "DUP1", &waE2E.Message{Conversation: proto.String("hello")}, nil)
	ch.HandleEvent(hello)
	ch.HandleEvent(hello)
	time.Sleep(200 * time.Millisecond)
	got := client.all()
	if len(got) != 1 {
		t.Fatalf("%d replies to a message delivered twice", len(got))
	}
	if text := got[0].msg.GetConversation(); !strings.HasPrefix(text, "Helo.") || !strings.Contains(text, "\n1. English\n2. Bahasa Melayu") {
		t.Errorf("first contact reply %q: want the greeting in Malay (+60) with a numbered language menu", text)
	}
}

type failingHandler struct{}

func (failingHandler) Handle(context.Context, bot.Inbound) error { return errors.New("disk full") }

// TestUncommittedMessageIsNotAcknowledged: whatsmeow acknowledges a message
// only if the handler reports success.
func TestUncommittedMessageIsNotAcknowledged(t *testing.T) {
	ch := New(Options{Client: &fakeClient{}}, bot.InboxOf(failingHandler{}))
	if ch.HandleEvent(msg(phone, phone, "F1", &waE2E.Message{Conversation: proto.String("sos")}, nil)) {
		t.Error("a message that was not committed would be acknowledged")
	}
	if !New(Options{Client: &fakeClient{}}, bot.InboxOf(&recorder{})).HandleEvent(msg(phone, phone, "F2", &waE2E.Message{Conversation: proto.String("sos")}, nil)) {
		t.Error("a committed message would not be acknowledged")
	}
}

// TestDiskFullIsNotAcknowledged: while the store cannot write, a message
// is left unacknowledged (WhatsApp delivers it again) and the citizen is
// told once to send again; after recovery the redelivered SOS is processed
// and reaches the outbox. Through the real runner and store.
func TestDiskFullIsNotAcknowledged(t *testing.T) {
	r := testkit.Runner(t)
	client := &fakeClient{}
	ch := New(Options{Client: client, PerRecipient: time.Millisecond, Global: time.Millisecond}, r)
	r.Register(Name, ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	texts := func() []string {
		var out []string
		for _, s := range client.all() {
			out = append(out, s.msg.GetConversation())
		}
		return out
	}
	waitFor := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(client.all()) < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return texts()
	}
	for i, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"} {
		if !ch.HandleEvent(msg(phone, phone, fmt.Sprintf("REG%d", i), &waE2E.Message{Conversation: proto.String(text)}, nil)) {
			t.Fatalf("registration message %d not acknowledged", i)
		}
	}
	registered := len(waitFor(15))
	r.Store.(*boltstore.Store).SetWriteFault(errors.New("no space left on device"))
	sos := msg(phone, phone, "DF1", &waE2E.Message{Conversation: proto.String("sos")}, nil)
	for range 2 {
		if ch.HandleEvent(sos) {
			t.Fatal("a message the store could not write would be acknowledged")
		}
	}
	notSaved := r.Engine.Catalog.Text("en", bot.NotSavedMessage, nil) // the stored language
	if got := waitFor(registered + 1)[registered:]; len(got) != 1 || got[0] != notSaved {
		t.Fatalf("during the outage the citizen got %q, want once %q", got, notSaved)
	}
	r.Store.(*boltstore.Store).SetWriteFault(nil)
	if !ch.HandleEvent(sos) {
		t.Fatal("the redelivered message was not acknowledged after recovery")
	}
	if got := waitFor(registered + 2)[registered:]; len(got) != 2 || !strings.Contains(got[1], "Your embassy has been alerted") {
		t.Errorf("after recovery the citizen got %q", got)
	}
	out, _ := r.Store.(*boltstore.Store).Outbox()
	if len(out) == 0 || out[len(out)-1].Type != dialogs.EventSOSRaised {
		t.Error("the SOS did not reach the outbox after recovery")
	}
}
