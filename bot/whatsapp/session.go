package whatsapp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.mau.fi/whatsmeow"
	waStore "go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// Session is a linked WhatsApp device in a data directory, and the
// whatsmeow client that serves it. This package alone decides the client's
// settings, because the channel's at-least-once guarantee depends on them.
type Session struct {
	devices *sqlstore.Container
	device  *waStore.Device
	client  *whatsmeow.Client
}

// OpenLinked opens the device linked in dataDir (`checkinbot whatsapp
// link`), or returns nil, nil when none is: it does not create a device
// file where none was linked.
func OpenLinked(ctx context.Context, dataDir string) (*Session, error) {
	if _, err := os.Stat(filepath.Join(dataDir, DeviceFile)); err != nil {
		return nil, nil
	}
	c, err := OpenDevices(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	dev, err := c.GetFirstDevice(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	if dev.ID == nil {
		c.Close()
		return nil, nil
	}
	client := whatsmeow.NewClient(dev, waLog.Noop)
	// Nothing is acknowledged to WhatsApp before the handler committed it
	// (HandleEvent returns true)…
	client.SynchronousAck = true
	// …and decrypted messages are kept until acknowledged, so one that
	// failed to commit can be processed again when WhatsApp redelivers it.
	client.EnableDecryptedEventBuffer = true
	return &Session{devices: c, device: dev, client: client}, nil
}

// connect starts receiving; whatsmeow keeps retrying on its own.
func (s *Session) connect(log interface{ Error(string, ...any) }) {
	if err := s.client.Connect(); err != nil {
		log.Error("whatsapp: cannot connect yet; whatsmeow keeps retrying", "err", err)
	}
}

// Close disconnects the client and closes the device store.
func (s *Session) Close() error {
	s.client.Disconnect()
	return s.devices.Close()
}
