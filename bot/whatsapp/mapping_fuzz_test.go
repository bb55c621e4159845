package whatsapp

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// waMark brackets every fuzzed text, so that any of it reaching a log is
// found by one search.
const waMark = "WAMARKk3"

// FuzzEventMapping hands whatsmeow message events built from fuzz input
// to the channel's event handler: from a phone number, a LID with or
// without its phone alternative, a LID only the device store resolves or
// none does, a group, ourselves, status and other broadcasts, newsletters;
// carrying nothing, a conversation, extended text, a location, a live
// location, a captioned image, video or document, an edit of any of those,
// a revoke, a reaction, a buttons or list reply — or any message at all
// that the fuzzed bytes decode to as protobuf. Properties:
//
//   - HandleEvent never panics and acknowledges (returns true) whatever
//     the inbox accepted or ignored;
//   - what reaches the inbox is what the message says (kind, text,
//     coordinates, address, message id), computed independently of the
//     mapping for the built shapes; groups, our own messages, broadcasts,
//     unresolvable senders, revokes and reactions never reach it;
//   - for any decoded protobuf: at most one input, a text input has text
//     that the message holds, a location input has none;
//   - no fuzzed text ever appears in a log.
func FuzzEventMapping(f *testing.F) {
	f.Add([]byte(nil), "ok", 11.55, 104.92, "60123456789", uint16(2))
	f.Add([]byte{0x0a, 0x02, 'o', 'k'}, "", 0.0, 0.0, "", uint16(0))
	f.Add([]byte(nil), "ok blue mango", 0.0, 0.0, "855123456789", uint16(2<<3|9))
	f.Add([]byte(nil), "", math.NaN(), math.Inf(1), "60123456789", uint16(4))
	f.Fuzz(func(t *testing.T, raw []byte, text string, lat, lon float64, user string, shape uint16) {
		source, content := int(shape&7), int(shape>>3)%16
		var logs bytes.Buffer
		rec := &recorder{}
		resolved := types.NewJID("855123456789", types.DefaultUserServer)
		ch := New(Options{Client: &fakeClient{}, LIDs: fakeLIDs{"98765432101234": resolved}, Log: debugLogTo(&logs)}, bot.InboxOf(rec))

		if user == "" || strings.ContainsAny(user, "@:.") {
			user = "60123456789" // a JID user has no separators
		}
		pn := types.NewJID(user, types.DefaultUserServer)
		lidJID := types.NewJID("98765432101234", types.HiddenUserServer)
		info := types.MessageInfo{ID: types.MessageID("ID" + user)}
		address := user
		switch source {
		case 0: // a phone number writing in its own chat
			info.Chat, info.Sender = pn, pn
		case 1: // a LID with its phone number alongside
			info.Chat, info.Sender, info.SenderAlt = lidJID, lidJID, pn
		case 2: // a LID the device store knows
			info.Chat, info.Sender = lidJID, lidJID
			address = resolved.User
		case 3: // a LID nobody can resolve
			unknown := types.NewJID("111"+user, types.HiddenUserServer)
			info.Chat, info.Sender = unknown, unknown
		case 4:
			info.Chat, info.Sender, info.IsGroup = types.NewJID("120363000000000000", types.GroupServer), pn, true
		case 5:
			info.Chat, info.Sender, info.IsFromMe = pn, pn, true
		case 6:
			info.Chat, info.Sender = types.StatusBroadcastJID, pn
		default:
			info.Chat, info.Sender = types.NewJID("1234", types.NewsletterServer), pn
			if shape&0x8000 != 0 {
				info.Chat = types.NewJID("5678", types.BroadcastServer)
			}
		}
		reaches := source <= 2

		marked := waMark + text + waMark
		var m *waE2E.Message
		want := bot.Inbound{Channel: Name, Address: address, MessageID: "m" + string(info.ID), Handle: "+" + address,
			LangHint: bot.LanguageForPhone("+" + address), Kind: dialogs.KindText, Text: marked}
		edit := shape&0x4000 != 0
		switch content {
		case 0: // whatever the bytes decode to
			m = &waE2E.Message{}
			if proto.Unmarshal(raw, m) != nil {
				return
			}
		case 1:
			m = nil
			want.Kind, want.Text = dialogs.KindMedia, ""
		case 2:
			m = &waE2E.Message{Conversation: proto.String(marked)}
		case 3:
			m = &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(marked)}}
		case 4:
			m = &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(lat), DegreesLongitude: proto.Float64(lon)}}
			want.Kind, want.Text, want.Lat, want.Lon = dialogs.KindLocation, "", lat, lon
		case 5:
			m = &waE2E.Message{LiveLocationMessage: &waE2E.LiveLocationMessage{DegreesLatitude: proto.Float64(lat), DegreesLongitude: proto.Float64(lon)}}
			want.Kind, want.Text, want.Lat, want.Lon = dialogs.KindLocation, "", lat, lon
		case 6:
			m = &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String(marked)}}
		case 7:
			m = &waE2E.Message{VideoMessage: &waE2E.VideoMessage{Caption: proto.String(marked)}}
		case 8:
			m = &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{Caption: proto.String(marked)}}
		case 9: // a location without coordinates: nil fields
			m = &waE2E.Message{LocationMessage: &waE2E.LocationMessage{}}
			want.Kind, want.Text = dialogs.KindLocation, ""
		case 10:
			m = &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(),
				Key: &waCommon.MessageKey{ID: proto.String("X")}}}
			reaches = false
		case 11:
			m = &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Text: proto.String(marked)}}
			reaches = false
		case 12: // a reply to another bot's buttons: not something we send; read as media
			m = &waE2E.Message{ButtonsResponseMessage: &waE2E.ButtonsResponseMessage{SelectedButtonID: proto.String(marked),
				Response: &waE2E.ButtonsResponseMessage_SelectedDisplayText{SelectedDisplayText: marked}}}
			want.Kind, want.Text = dialogs.KindMedia, ""
		case 13:
			m = &waE2E.Message{ListResponseMessage: &waE2E.ListResponseMessage{Title: proto.String(marked),
				SingleSelectReply: &waE2E.ListResponseMessage_SingleSelectReply{SelectedRowID: proto.String(marked)}}}
			want.Kind, want.Text = dialogs.KindMedia, ""
		case 14: // an empty text and an empty caption: nothing to read
			m = &waE2E.Message{Conversation: proto.String(""), ImageMessage: &waE2E.ImageMessage{Caption: proto.String("")}}
			want.Kind, want.Text = dialogs.KindMedia, ""
		default: // text wins over a caption and a location in the same message
			m = &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(marked)},
				ImageMessage:    &waE2E.ImageMessage{Caption: proto.String(waMark + "caption")},
				LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(lat)}}
		}
		if edit && content > 0 && content < 10 {
			// An edit is read like the new message it carries.
			m = &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), EditedMessage: m}}
			if content == 1 { // an edit of nothing: a protocol message with nothing to answer
				reaches = false
			}
		}

		if !ch.HandleEvent(&events.Message{Info: info, Message: m}) {
			t.Errorf("an accepted message was left unacknowledged")
		}
		got := rec.ins
		switch {
		case len(got) > 1:
			t.Fatalf("one message reached the engine %d times", len(got))
		case content == 0:
			if reaches && len(got) == 1 {
				checkDecoded(t, m, got[0])
			}
			if !reaches && len(got) != 0 {
				t.Errorf("source %d reached the engine: %+v", source, got[0])
			}
		case !reaches && len(got) != 0:
			t.Errorf("source %d, content %d reached the engine: %+v", source, content, got[0])
		case reaches && len(got) != 1:
			t.Errorf("source %d, content %d did not reach the engine", source, content)
		case reaches && !sameInbound(got[0], want):
			t.Errorf("source %d, content %d: got %+v, want %+v", source, content, got[0], want)
		}
		if strings.Contains(logs.String(), waMark) {
			t.Errorf("fuzzed text reached a log:\n%s", logs.String())
		}
	})
}

// debugLogTo logs everything, debug included, to w.
func debugLogTo(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// sameInbound compares inputs, NaN coordinates included.
func sameInbound(a, b bot.Inbound) bool {
	la, lb := a, b
	la.Lat, la.Lon, lb.Lat, lb.Lon = 0, 0, 0, 0
	return la == lb && math.Float64bits(a.Lat) == math.Float64bits(b.Lat) && math.Float64bits(a.Lon) == math.Float64bits(b.Lon)
}

// checkDecoded checks an input mapped from an arbitrary decoded message:
// text comes from the message (its text, an edit's, a caption), a
// location carries no text, media carries nothing.
func checkDecoded(t *testing.T, m *waE2E.Message, in bot.Inbound) {
	t.Helper()
	texts := map[string]bool{}
	for _, x := range []*waE2E.Message{m, m.GetProtocolMessage().GetEditedMessage()} {
		for _, s := range []string{x.GetConversation(), x.GetExtendedTextMessage().GetText(), x.GetImageMessage().GetCaption(),
			x.GetVideoMessage().GetCaption(), x.GetDocumentMessage().GetCaption()} {
			texts[s] = s != ""
		}
	}
	switch in.Kind {
	case dialogs.KindText:
		if !texts[in.Text] {
			t.Errorf("text input %q is none of the message's texts", in.Text)
		}
	case dialogs.KindLocation, dialogs.KindMedia:
		if in.Text != "" {
			t.Errorf("kind %d carries text %q", in.Kind, in.Text)
		}
	default:
		t.Errorf("a message mapped to kind %d", in.Kind)
	}
}
