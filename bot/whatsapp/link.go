package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"time"

	"github.com/skip2/go-qrcode"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	waLog "go.mau.fi/whatsmeow/util/log"
	_ "modernc.org/sqlite" // pure Go SQLite: no cgo
)

// DeviceFile is the device session's file in the data directory.
const DeviceFile = "whatsapp.db"

// OpenDevices opens (creating or upgrading) whatsmeow's SQL store in dir.
// Foreign keys must be on: whatsmeow's upgrade refuses to run without them.
func OpenDevices(ctx context.Context, dir string) (*sqlstore.Container, error) {
	path := filepath.Join(dir, DeviceFile)
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	c, err := sqlstore.New(ctx, "sqlite", dsn, waLog.Noop)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %s: %w", path, err)
	}
	return c, nil
}

// Linker is what linking needs of *whatsmeow.Client.
type Linker interface {
	GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error)
	Connect() error
	PairPhone(ctx context.Context, phone string, showPushNotification bool, clientType whatsmeow.PairClientType, clientDisplayName string) (string, error)
	Disconnect()
}

var _ Linker = (*whatsmeow.Client)(nil)

// Linking errors, each saying what to do.
var (
	ErrAlreadyLinked = errors.New("a WhatsApp account is already linked; run `checkinbot whatsapp unlink` first to link another")
	ErrBadPhone      = errors.New("the phone number must be international: + then country code and number, digits only, like +60123456789")
	ErrLinkTimeout   = errors.New("timed out waiting for the phone: run the command again and scan (or enter the code) within two minutes")
	ErrNotLinked     = errors.New("no WhatsApp account is linked")
)

var phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Link pairs device with a phone: a QR code drawn in the terminal for the
// phone to scan (WhatsApp → Linked devices), or with phone set, an
// 8-character pairing code to type on that phone instead.
func Link(ctx context.Context, device *store.Device, l Linker, phone string, out io.Writer, timeout time.Duration) error {
	if device.ID != nil {
		return ErrAlreadyLinked
	}
	if phone != "" && !phonePattern.MatchString(phone) {
		return ErrBadPhone
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	qr, err := l.GetQRChannel(ctx)
	if err != nil {
		return fmt.Errorf("whatsapp: %w", err)
	}
	if err := l.Connect(); err != nil {
		return fmt.Errorf("whatsapp: cannot reach WhatsApp's servers: %w", err)
	}
	paired := false
	for {
		select {
		case <-ctx.Done():
			l.Disconnect()
			return ErrLinkTimeout
		case item, ok := <-qr:
			if !ok {
				l.Disconnect()
				return ErrLinkTimeout
			}
			switch {
			case item.Event == whatsmeow.QRChannelEventCode && phone == "":
				code, err := qrcode.New(item.Code, qrcode.Low)
				if err != nil {
					return fmt.Errorf("whatsapp: drawing the QR code: %w", err)
				}
				fmt.Fprintf(out, "Scan this with the phone: WhatsApp → Settings → Linked devices → Link a device.\n%s\n", code.ToSmallString(false))
			case item.Event == whatsmeow.QRChannelEventCode && !paired:
				code, err := l.PairPhone(ctx, phone, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
				if err != nil {
					l.Disconnect()
					return fmt.Errorf("whatsapp: pairing code refused: %w", err)
				}
				paired = true
				fmt.Fprintf(out, "On the phone: WhatsApp → Linked devices → Link with phone number instead, and enter: %s\n", code)
			case item == whatsmeow.QRChannelSuccess:
				fmt.Fprintln(out, "Linked. `checkinbot serve` will now answer on WhatsApp.")
				return nil
			case item == whatsmeow.QRChannelTimeout:
				l.Disconnect()
				return ErrLinkTimeout
			case item.Event == whatsmeow.QRChannelEventError:
				l.Disconnect()
				return fmt.Errorf("whatsapp: pairing failed: %v", item.Error)
			case item.Event != whatsmeow.QRChannelEventCode:
				l.Disconnect()
				return fmt.Errorf("whatsapp: pairing failed: %s", item.Event)
			}
		}
	}
}
