// Package whatsapp is the WhatsApp channel, on go.mau.fi/whatsmeow: an
// unofficial client of WhatsApp's multi-device protocol, linked to a phone
// number like WhatsApp Web (see docs/whatsapp.md for what that implies).
//
// Incoming messages are mapped to engine inputs and handled before the
// event handler returns; with whatsmeow's SynchronousAck nothing is
// acknowledged to WhatsApp before it is committed. Choices are numbered
// text menus (WhatsApp bots have no inline keyboards here). Outbound
// messages are paced per recipient and overall, replies before reminders,
// because automated sending from an unofficial client risks a ban.
package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// Name is the channel's name in the runner and in user keys.
const Name = "whatsapp"

// Client is the part of *whatsmeow.Client the channel uses: narrow, so
// tests can stand in for WhatsApp, which cannot be faked on the wire.
type Client interface {
	SendMessage(ctx context.Context, to types.JID, message *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error)
	BuildRevoke(chat, sender types.JID, id types.MessageID) *waE2E.Message
	MarkRead(ctx context.Context, ids []types.MessageID, timestamp time.Time, chat, sender types.JID, receiptTypeExtra ...types.ReceiptType) error
}

var _ Client = (*whatsmeow.Client)(nil)

// LIDs resolves a LID (WhatsApp's privacy-preserving sender id) to the
// phone number JID it stands for; whatsmeow's Store.LIDs satisfies it.
type LIDs interface {
	GetPNForLID(ctx context.Context, lid types.JID) (types.JID, error)
}

// Options configure the channel.
type Options struct {
	// Session is the linked device to serve (OpenLinked): the channel
	// connects it in Run and takes its events. Tests set Client instead.
	Session *Session
	// Client stands in for WhatsApp when Session is nil; LIDs resolves
	// senders' LIDs for it (with a Session, the device's store does).
	Client Client
	LIDs   LIDs
	// PerRecipient is the least time between two messages to one person;
	// Global the least time between any two messages. The defaults (2 s
	// and 1 s) keep well below what triggers WhatsApp's spam detection for
	// a number that only answers people who wrote first.
	PerRecipient time.Duration
	Global       time.Duration
	Log          *slog.Logger
}

// Channel is a WhatsApp channel.
type Channel struct {
	client  Client
	lids    LIDs
	inbox   bot.Inbox
	opt     Options
	out     *pacer
	health  Health
	stopped atomic.Bool // intake stopped (shutdown): messages are left unacknowledged
}

// StopIntake makes the channel leave every further message unacknowledged,
// so WhatsApp delivers it again after the restart, while queued replies
// are still sent (a graceful shutdown drains them).
func (c *Channel) StopIntake() { c.stopped.Store(true) }

// New builds the channel (bot.Channel); messages go to inbox. With a
// Session, HandleEvent is given to its client's event handler here; the
// caller registers the channel with the runner.
func New(opt Options, inbox bot.Inbox) *Channel {
	if opt.PerRecipient <= 0 {
		opt.PerRecipient = 2 * time.Second
	}
	if opt.Global <= 0 {
		opt.Global = time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	c := &Channel{client: opt.Client, lids: opt.LIDs, inbox: inbox, opt: opt}
	if s := opt.Session; s != nil {
		c.client, c.lids = s.client, s.device.LIDs
		s.client.AddEventHandlerWithSuccessStatus(c.HandleEvent)
	}
	c.out = newPacer(c)
	c.health.set(StateDisconnected, "not connected yet", opt.Log)
	return c
}

// Name is the channel's name (bot.Channel).
func (c *Channel) Name() string { return Name }

// SendRate is the pacing's sustained rate (bot.SendRater): one message
// per Options.Global, 1 a second by default. WhatsApp publishes no limit
// for an unofficial client; this pace is the conservative one
// docs/whatsapp.md chose against ban risk, so the crowding advice never
// assumes more.
func (c *Channel) SendRate() float64 { return float64(time.Second) / float64(c.opt.Global) }

// Run connects the session, if any, and sends queued messages until ctx
// ends (bot.Channel). Then it stops intake — further messages stay
// unacknowledged, so WhatsApp delivers them again after the restart —
// keeps sending until the inbox's replies drained, and disconnects.
func (c *Channel) Run(ctx context.Context) error {
	if c.opt.Session != nil {
		c.opt.Session.connect(c.opt.Log)
		c.opt.Log.Info("checkinbot serving WhatsApp")
	}
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { c.out.run(sendCtx); close(done) }()
	<-ctx.Done()
	c.StopIntake()
	_ = c.inbox.DrainReplies(context.Background())
	stopSending()
	<-done
	if c.opt.Session != nil {
		c.opt.Session.client.Disconnect()
	}
	return nil
}

// Close releases the session, if any (after Run returned, or instead of it).
func (c *Channel) Close() error {
	if c.opt.Session == nil {
		return nil
	}
	return c.opt.Session.Close()
}

// HandleEvent is whatsmeow's event handler (AddEventHandlerWithSuccessStatus):
// one exhaustive switch, every event either handled or logged at debug
// level. It returns false when a message could not be committed — above
// all when the store cannot write — so that whatsmeow does not acknowledge
// it and WhatsApp delivers it again; only a message that fails
// deterministically (bot.ErrUpdateFailed, logged and counted by the
// runner) is acknowledged and given up.
func (c *Channel) HandleEvent(evt any) bool {
	switch e := evt.(type) {
	case *events.Message:
		return c.message(context.Background(), e)
	case *events.Connected:
		c.health.set(StateConnected, "connected", c.opt.Log)
	case *events.Disconnected:
		c.health.set(StateDisconnected, "disconnected; whatsmeow reconnects with backoff", c.opt.Log)
	case *events.KeepAliveTimeout:
		c.health.set(StateDisconnected, fmt.Sprintf("keep-alive timed out (%d in a row); reconnecting", e.ErrorCount), c.opt.Log)
	case *events.StreamReplaced:
		c.health.set(StateDisconnected, "another client connected with this device's session: stop the other process", c.opt.Log)
	case *events.LoggedOut:
		c.health.set(StateLoggedOut, "WhatsApp logged this device out (reason: "+e.Reason.String()+
			"). Messages cannot be received until it is linked again: run `checkinbot whatsapp link` and scan the QR code with the phone", c.opt.Log)
	case *events.TemporaryBan:
		c.health.set(StateBanned, fmt.Sprintf("WhatsApp temporarily banned this number (%s, expires in %s): sending is suspended",
			e.Code.String(), e.Expire.Round(time.Minute)), c.opt.Log)
	default:
		c.opt.Log.Debug("whatsapp event ignored", "type", fmt.Sprintf("%T", evt))
	}
	return true
}

// message maps one incoming message and hands it to the runner, returning
// only when it was committed (SynchronousAck then acknowledges it).
func (c *Channel) message(ctx context.Context, e *events.Message) bool {
	if c.stopped.Load() {
		return false
	}
	in, ok := c.mapMessage(ctx, e)
	if !ok {
		return true
	}
	if err := c.inbox.Handle(ctx, in); err != nil {
		if errors.Is(err, bot.ErrUpdateFailed) {
			return true
		}
		c.opt.Log.Warn("whatsapp message not processed; not acknowledged, so it comes again", "id", e.Info.ID)
		return false
	}
	return true
}

// mapMessage turns a message into an engine input. ok is false for what
// the engine never sees: our own messages, groups, broadcasts, status
// updates, and senders whose LID cannot be resolved.
func (c *Channel) mapMessage(ctx context.Context, e *events.Message) (bot.Inbound, bool) {
	info := e.Info
	if info.IsFromMe || info.IsGroup || info.Chat.Server == types.BroadcastServer || info.Chat == types.StatusBroadcastJID ||
		info.Chat.Server == types.NewsletterServer {
		return bot.Inbound{}, false
	}
	sender, ok := c.phoneOf(ctx, info)
	if !ok {
		c.opt.Log.Warn("whatsapp sender without a resolvable phone number ignored", "id", info.ID)
		return bot.Inbound{}, false
	}
	phone := "+" + sender.User
	in := bot.Inbound{Channel: Name, Address: sender.User, MessageID: "m" + string(info.ID), Handle: phone,
		LangHint: bot.LanguageForPhone(phone)}
	m := e.Message
	if edited := m.GetProtocolMessage().GetEditedMessage(); edited != nil {
		m = edited // an edit is read like a new message: it may carry the keyword
	} else if m.GetProtocolMessage() != nil || m.GetReactionMessage() != nil {
		return bot.Inbound{}, false // revokes, reactions, timer changes: nothing to answer
	}
	switch {
	case m.GetConversation() != "":
		in.Kind, in.Text = dialogs.KindText, m.GetConversation()
	case m.GetExtendedTextMessage().GetText() != "":
		in.Kind, in.Text = dialogs.KindText, m.GetExtendedTextMessage().GetText()
	case m.GetLocationMessage() != nil:
		in.Kind, in.Lat, in.Lon = dialogs.KindLocation, m.GetLocationMessage().GetDegreesLatitude(), m.GetLocationMessage().GetDegreesLongitude()
	case m.GetLiveLocationMessage() != nil:
		in.Kind, in.Lat, in.Lon = dialogs.KindLocation, m.GetLiveLocationMessage().GetDegreesLatitude(), m.GetLiveLocationMessage().GetDegreesLongitude()
	case caption(m) != "":
		// A photo "as proof of life" with a caption is read by its caption,
		// so a keyword in it is never missed.
		in.Kind, in.Text = dialogs.KindText, caption(m)
	default:
		in.Kind = dialogs.KindMedia // image, sticker, voice, document, contact …
	}
	return in, true
}

// phoneOf finds the phone-number JID of the sender, so one person has one
// key whether WhatsApp shows them by number or by LID.
func (c *Channel) phoneOf(ctx context.Context, info types.MessageInfo) (types.JID, bool) {
	s := info.Sender.ToNonAD()
	if s.Server == types.DefaultUserServer {
		return s, true
	}
	if s.Server != types.HiddenUserServer {
		return types.JID{}, false
	}
	if alt := info.SenderAlt.ToNonAD(); alt.Server == types.DefaultUserServer {
		return alt, true
	}
	if c.lids == nil {
		return types.JID{}, false
	}
	pn, err := c.lids.GetPNForLID(ctx, s)
	if err != nil || pn.IsEmpty() {
		return types.JID{}, false
	}
	return pn.ToNonAD(), true
}

// Send queues a response: all replies as one text, choices as a numbered
// menu. r.Done hears when WhatsApp accepted it, with the message id (our
// own messages can be revoked later: Delete). The citizen's own messages
// cannot be deleted by us.
func (c *Channel) Send(_ context.Context, address string, r bot.Response) error {
	if c.health.State() == StateBanned || c.health.State() == StateLoggedOut {
		c.opt.Log.Warn("whatsapp cannot send now; the reply waits until the channel recovers", "state", c.health.State())
	}
	if len(r.Replies) == 0 {
		r.Report(bot.Receipt{})
		return nil
	}
	var b strings.Builder
	for i, rep := range r.Replies {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(rep.Text)
		if len(rep.Buttons) > 0 {
			b.WriteString("\n")
			for j, btn := range rep.Buttons {
				fmt.Fprintf(&b, "\n%d. %s", j+1, btn.Label)
			}
		}
	}
	c.out.push(r.Priority, &waItem{to: address, text: b.String(), done: r.Done})
	return nil
}

// Delete revokes one of our own messages (bot.Deleter), paced like every
// other message, and waits until it was sent or ctx ends.
func (c *Channel) Delete(ctx context.Context, address, msgID string) error {
	result := make(chan error, 1)
	c.out.push(bot.PriorityReply, &waItem{to: address, revoke: types.MessageID(msgID), done: func(rc bot.Receipt) { result <- rc.Err }})
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jid is a citizen's chat.
func jid(address string) types.JID { return types.NewJID(address, types.DefaultUserServer) }

func textMessage(s string) *waE2E.Message { return &waE2E.Message{Conversation: proto.String(s)} }

// caption is the text under a photo, video or document.
func caption(m *waE2E.Message) string {
	switch {
	case m.GetImageMessage().GetCaption() != "":
		return m.GetImageMessage().GetCaption()
	case m.GetVideoMessage().GetCaption() != "":
		return m.GetVideoMessage().GetCaption()
	case m.GetDocumentMessage().GetCaption() != "":
		return m.GetDocumentMessage().GetCaption()
	}
	return ""
}
